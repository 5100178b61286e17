//! `clawsess doctor --probe`: drives the installed Claude Code against a stand-in Messages API
//! served here on 127.0.0.1 ([`stand_in`]), in a throw-away HOME and state dir, and checks each
//! behaviour of Claude Code that clawsess relies on (docs/PROBE.md says what each means).
//!
//! No network, no API key: claude talks to the stand-in only. The runs, a few seconds in all:
//!
//! 1. at once: a fresh `claude -p` with the probe's recording hooks and clawsess's own (the
//!    hook fields and env, clawsess recording the session, `additionalContext`, the
//!    transcript and its checkpoint); a fresh one whose prompt a hook refuses with exit 2; a
//!    fresh stream-json one sent a `client_composed` message naming a file with `@`;
//! 2. two resumes of the first session at once, the first held at the stand-in until the
//!    second is done: the transcript forks, as it does when two surfaces answer at once;
//! 3. a checkpoint naming the older branch is appended (the line clawsess writes), and a
//!    resume must follow it;
//! 4. a checkpoint naming a stale branch is appended, clawsess's correction
//!    ([`branches::point_resume_at`]) appends its own, and a resume must follow that.
//!
//! The result is recorded per (binary, version) in the store ([`crate::store::ProbeRecord`]):
//! the checkpoint correction writes into transcripts of a version outside the tested range
//! only once a probe passed with it (`crate::turn::fork::correction_allowed`).

pub mod loopback;
pub mod stand_in;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::claude::versions::{self, Version};
use crate::claude::{self, ClaudeResult};
use crate::store::{self, ProbeRun, Store};
use crate::transcript::branches::{self, Branches, Reach};
use crate::turn::hooks::{EventName, HookInput};
use stand_in::StandInApi;

/// How long one claude run may take before the probe gives up on it.
const RUN_WAIT: Duration = Duration::from_secs(90);
/// The API key claude is given (the stand-in takes any).
const KEY: &str = "sk-ant-api03-clawsess-probe-key-0000000000000000000000";
/// What the probe's prompt hook adds as `additionalContext` (prompts marked `[probe-context]`).
const CONTEXT: &str = "clawsess-probe-context-5e1f";
/// What the `@` file of the stream-json run holds: in the request only if it was expanded.
const FILE_TEXT: &str = "clawsess-probe-file-text-93b2";

/// The probe's recording hook: `sh hook.sh EVENT`, with `PROBE_DIR` set. It keeps the hook's
/// input, the env clawsess reads and its process chain; refuses prompts marked
/// `[probe-refuse]` (exit 2), refuses and SIGTERMs its claude for `[probe-sigterm]`, and adds
/// context to prompts marked `[probe-context]`. clawsess's
/// own hooks run beside it, for the runs with `PROBE_REAL_HOOKS` set.
const HOOK_SH: &str = r#"ev=$1
f="$PROBE_DIR/rec/$ev-$$"
cat > "$f.json.part" && mv "$f.json.part" "$f.json"
p=$$; n=0; chain=
while [ "$n" -lt 6 ] && [ "$p" -gt 1 ]; do
  p=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f2)
  [ -n "$p" ] || break
  chain="$chain $p"; n=$((n+1))
done
{
  echo "CLAUDE_PID=${CLAUDE_PID:-}"
  echo "CLAUDE_CODE_SESSION_ID=${CLAUDE_CODE_SESSION_ID:-}"
  echo "CLAUDE_ENV_FILE=${CLAUDE_ENV_FILE:-}"
  echo "CHAIN=$chain"
} > "$f.env.part" && mv "$f.env.part" "$f.env"
if [ "$ev" = prompt-submit ]; then
  if grep -q 'probe-sigterm' "$f.json"; then
    # As clawsess refuses a `claude -p` that is behind: block, SIGTERM its claude, wait for it.
    for p in $chain; do
      case "$(cat "/proc/$p/comm" 2>/dev/null)" in
        claude|claude.exe|node)
          printf '%s' '{"decision":"block","reason":"stopped by the clawsess probe"}'
          echo "stopped by the clawsess probe" >&2
          kill -TERM "$p"; n=0
          while [ -d "/proc/$p" ] && [ "$n" -lt 150 ]; do sleep 0.02; n=$((n+1)); done
          exit 2;;
      esac
    done
  fi
  if grep -q 'probe-refuse' "$f.json"; then echo "refused by the clawsess probe" >&2; exit 2; fi
  if grep -q 'probe-context' "$f.json"; then
    printf '%s' '{"hookSpecificOutput":{"hookEventName":"UserPromptSubmit","additionalContext":"CONTEXT"}}'
  fi
fi
exit 0
"#;

/// One behaviour, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short and stable: what `--json` readers and the store key on.
    pub name: &'static str,
    pub ok: bool,
    /// What was seen, or what went wrong.
    pub detail: String,
}

/// What a probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub claude: PathBuf,
    pub version: String,
    /// In the tested range (`versions::tested`).
    pub tested: bool,
    pub ok: bool,
    pub checks: Vec<Check>,
    pub elapsed_ms: u64,
}

impl Report {
    /// The names of the checks that failed.
    pub fn failed(&self) -> Vec<String> {
        self.checks.iter().filter(|c| !c.ok).map(|c| c.name.to_owned()).collect()
    }
}

/// Probes `claude` (found as `run` finds it); `clawsess` is the binary whose hooks are checked.
pub fn probe(claude: &Path, clawsess: &Path) -> Result<Report> {
    let started = Instant::now();
    let version = versions::installed(claude)?;
    let lab = Lab::new(claude, clawsess, version)?;
    let checks = lab.run();
    let ok = checks.iter().all(|c| c.ok);
    Ok(Report {
        claude: claude.to_path_buf(),
        version: version.to_string(),
        tested: version.tested(),
        ok,
        checks,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The most claude processes the probe runs at once (three fresh sessions; a stopped turn
/// beside two resumes).
pub const CLAUDES_AT_ONCE: usize = 3;

/// How long the probe waits for its claude slots before it gives up.
pub const SLOT_WAIT: Duration = Duration::from_secs(600);

/// The probe's claudes count against the claude cap (`turn::cap`) like a run's: it takes
/// [`CLAUDES_AT_ONCE`] slots together, held until they drop, waiting in line until
/// `deadline` (`waiting` hears its place; an idle warm claude is ended to make room).
pub fn take_slots<'s>(
    store: &'s Store,
    deadline: Instant,
    waiting: impl FnMut(&crate::turn::cap::Waiting),
) -> Result<Vec<crate::turn::cap::Slot<'s>>> {
    let cap = crate::turn::cap::max_claudes()?;
    let mut ended = Vec::new();
    let make_room = |live: &[crate::store::ClaudeSlot]| crate::warm::end_idle(store, live, &mut ended, cap);
    crate::turn::cap::take_many(store, "doctor --probe", CLAUDES_AT_ONCE, cap, deadline, make_room, waiting)
}

/// Records `report` in the store as its binary's newest probe of its version.
pub fn record(store: &Store, report: &Report) -> Result<()> {
    let version = Version::parse(&report.version).context("the report names no version")?;
    let guard = store.lock(store::COMMAND_LOCK_WAIT)?;
    let run = ProbeRun {
        claude: report.claude.clone(),
        at: store::now_ms(),
        ok: report.ok,
        failed: report.failed(),
    };
    guard.put_probe_run(version, run)
}

/// The throw-away world of one probe: its dir (removed on drop), the stand-in, and the runs.
struct Lab {
    claude: PathBuf,
    version: Version,
    dir: TempDir,
    home: PathBuf,
    project: PathBuf,
    state: PathBuf,
    api: StandInApi,
}

/// What one claude run left.
struct Ran {
    pid: u32,
    ok: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Ran {
    fn result(&self) -> Result<ClaudeResult> {
        if !self.ok {
            bail!("claude failed: {}", crate::sys::one_line(&String::from_utf8_lossy(&self.stderr), 300));
        }
        ClaudeResult::parse(&self.stdout)
    }

    /// The last stdout line of type `result` (stream-json output).
    fn stream_result(&self) -> Option<ClaudeResult> {
        String::from_utf8_lossy(&self.stdout)
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["type"] == "result")
            .and_then(|v| ClaudeResult::parse(v.to_string().as_bytes()).ok())
    }
}

/// One recorded hook run.
#[derive(Debug)]
struct Hooked {
    event: String,
    input: Value,
    env: Vec<(String, String)>,
}

impl Hooked {
    fn env(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    fn chain(&self) -> Vec<u32> {
        self.env("CHAIN").unwrap_or("").split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }
}

impl Lab {
    fn new(claude: &Path, clawsess: &Path, version: Version) -> Result<Lab> {
        let dir = TempDir::new()?;
        let home = dir.0.join("home");
        let project = home.join("work").join("probe");
        let state = dir.0.join("state");
        for d in [&home.join(".claude"), &project, &dir.0.join("rec"), &dir.0.join("tmp")] {
            std::fs::create_dir_all(d).with_context(|| format!("could not create {}", d.display()))?;
        }
        std::fs::write(dir.0.join("hook.sh"), HOOK_SH.replace("CONTEXT", CONTEXT))?;
        let hook = |event: &str| {
            let ours = format!("[ -z \"$PROBE_REAL_HOOKS\" ] || exec {} hook {event}", sh_quote(clawsess));
            json!([{"hooks": [
                {"type": "command", "timeout": 30,
                 "command": format!("/bin/sh {} {event}", sh_quote(&dir.0.join("hook.sh")))},
                {"type": "command", "timeout": 30, "command": ours},
            ]}])
        };
        let settings = json!({"hooks": {
            "SessionStart": hook("session-start"),
            "UserPromptSubmit": hook("prompt-submit"),
            "Stop": hook("stop"),
            "SessionEnd": hook("session-end"),
        }});
        std::fs::write(home.join(".claude").join("settings.json"), serde_json::to_vec_pretty(&settings)?)?;
        let tail: String = KEY.chars().skip(KEY.chars().count() - 20).collect();
        let claude_json = json!({
            "hasCompletedOnboarding": true, "lastOnboardingVersion": version.to_string(),
            "numStartups": 1, "theme": "dark",
            "customApiKeyResponses": {"approved": [tail], "rejected": []},
            "projects": {project.to_string_lossy(): {"hasTrustDialogAccepted": true,
                "hasCompletedProjectOnboarding": true, "allowedTools": []}},
        });
        std::fs::write(home.join(".claude.json"), serde_json::to_vec_pretty(&claude_json)?)?;
        std::fs::write(dir.0.join("file.txt"), format!("{FILE_TEXT}\n"))?;
        let api = StandInApi::start().context("could not serve the stand-in API on 127.0.0.1")?;
        Ok(Lab { claude: claude.to_path_buf(), version, dir, home, project, state, api })
    }

    /// `claude -p ARGS` in the throw-away world, `stdin` given and closed; not waited for.
    fn spawn(&self, args: &[&str], stdin: &str, real_hooks: bool) -> Result<Running> {
        let mut cmd = Command::new(&self.claude);
        cmd.env_clear()
            .current_dir(&self.project)
            .arg("-p")
            .args(args)
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()))
            .env("SHELL", "/bin/sh")
            .env("LANG", "C.UTF-8")
            .env("ANTHROPIC_BASE_URL", self.api.base_url())
            .env("ANTHROPIC_API_KEY", KEY)
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("CLAWSESS_HOME", &self.state)
            .env("PROBE_DIR", &self.dir.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // What claude keeps in the temp dir (its sockets, its scratch) goes with the probe's.
        cmd.env("TMPDIR", self.dir.0.join("tmp"));
        if real_hooks {
            cmd.env("PROBE_REAL_HOOKS", "1");
        }
        let mut child = cmd.spawn().with_context(|| format!("could not run {}", self.claude.display()))?;
        let mut input = child.stdin.take().context("no stdin")?;
        let text = stdin.to_owned();
        let feeder = thread::spawn(move || {
            let _ = input.write_all(text.as_bytes());
        });
        let mut out = child.stdout.take().context("no stdout")?;
        let mut err = child.stderr.take().context("no stderr")?;
        let stdout = thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out.read_to_end(&mut b);
            b
        });
        let stderr = thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        });
        Ok(Running {
            pid: child.id(),
            child,
            feeder: Some(feeder),
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }

    /// The hooks recorded so far for session `id`, in the order they ran.
    fn hooked(&self, id: &str) -> Vec<Hooked> {
        let dir = self.dir.0.join("rec");
        let mut found: Vec<(std::time::SystemTime, Hooked)> = Vec::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            let event = stem.rsplit_once('-').map_or(stem, |(e, _)| e).to_owned();
            let Ok(text) = std::fs::read(&path) else { continue };
            let input: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
            if input.get("session_id").and_then(Value::as_str) != Some(id) {
                continue;
            }
            let env = std::fs::read_to_string(path.with_extension("env"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                .collect();
            let when = entry.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
            found.push((when, Hooked { event, input, env }));
        }
        found.sort_by_key(|(when, _)| *when);
        found.into_iter().map(|(_, h)| h).collect()
    }

    fn transcript(&self, id: &str) -> PathBuf {
        claude::transcript_path(&self.home.join(".claude"), &self.project, id)
    }

    /// The main-turn request whose prompt holds `marker`.
    fn request_for(&self, marker: &str) -> Option<stand_in::Recorded> {
        self.api.turn_requests().into_iter().rev().find(|r| r.last_user_text.contains(marker))
    }

    fn run(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        // 1. Three fresh sessions at once.
        let first = self.spawn(&["--output-format", "json"], "probe one [probe-context]", true);
        let refused = self.spawn(&["--output-format", "json"], "[probe-refuse] probe refused", false);
        let at_file = self.dir.0.join("file.txt");
        let verbatim_prompt = format!("probe verbatim @{}", at_file.display());
        let message = crate::live::wire::user_message(&verbatim_prompt, &[], true);
        let streamed = self.spawn(
            &["--input-format", "stream-json", "--output-format", "stream-json", "--verbose"],
            &format!("{message}\n"),
            false,
        );
        let first = first.and_then(Running::wait);
        let refused = refused.and_then(Running::wait);
        let refused_id = refused.as_ref().ok().and_then(|r| r.result().ok()?.session_id().map(str::to_owned));
        let streamed = streamed.and_then(Running::wait);

        let (first, id) = match first.and_then(|ran| {
            let result = ran.result()?;
            let id = result.session_id().context("its result names no session_id")?.to_owned();
            Ok((ran, result, id))
        }) {
            Ok((ran, result, id)) => {
                let reply = self.request_for("probe one").map(|r| r.reply).unwrap_or_default();
                let ok = !reply.is_empty() && result.result() == reply;
                checks.push(check("claude -p answers", ok, || {
                    if ok {
                        format!("session {id}, the stand-in's reply")
                    } else {
                        format!("result {:?}, not the stand-in's reply {reply:?}", result.result())
                    }
                }));
                (ran, id)
            }
            Err(err) => {
                checks.push(Check { name: "claude -p answers", ok: false, detail: format!("{err:#}") });
                checks.push(self.refusal(refused));
                checks.push(self.verbatim(streamed, &verbatim_prompt));
                return checks;
            }
        };
        let hooked = self.hooked(&id);
        checks.push(self.hooks_fire(&hooked));
        checks.push(self.hook_fields(&hooked, &id));
        checks.push(self.hook_env(&hooked, &id, first.pid));
        let start_chain =
            hooked.iter().find(|h| h.event == "session-start").map(Hooked::chain).unwrap_or_default();
        checks.push(self.clawsess_records(&id, &start_chain));
        checks.push(self.context_reaches_model());
        let transcript = self.transcript(&id);
        checks.push(self.transcript_lines(&transcript, &hooked));
        let writes_checkpoints = match self.checkpoint_shape(&transcript, &id) {
            Ok((detail, writes)) => {
                checks.push(Check { name: "checkpoints", ok: true, detail });
                writes
            }
            Err(detail) => {
                checks.push(Check { name: "checkpoints", ok: false, detail });
                false
            }
        };
        checks.push(self.refusal(refused));
        checks.push(self.verbatim(streamed, &verbatim_prompt));
        // A turn stopped by SIGTERM at its prompt hook, on the refused session, beside the resumes.
        let stopped = refused_id.map(|rid| {
            let before = std::fs::read(self.transcript(&rid)).unwrap_or_default();
            let run = self.spawn(
                &["--output-format", "json", "--resume", &rid],
                "[probe-sigterm] probe stopped",
                false,
            );
            (rid, before, run)
        });
        checks.extend(self.resumes(&id, &transcript, writes_checkpoints));
        if let Some((rid, before, run)) = stopped {
            checks.push(self.stopped(&rid, &before, run.and_then(Running::wait)));
        }
        checks.push(self.hooks_off());
        checks
    }

    /// A kept claude whose only hooks are clawsess's runs with `disableAllHooks`
    /// (`claude::hookless`): no hook may run, and the model must see what it sees from a claude
    /// with its hooks (the same tools as the first session's).
    fn hooks_off(&self) -> Check {
        let args = ["--output-format", "json", "--settings", crate::claude::hookless::SETTINGS];
        let ran = self.spawn(&args, "probe hookless", true).and_then(Running::wait);
        let seen = (|| -> std::result::Result<String, String> {
            let result = ran.and_then(|ran| ran.result()).map_err(|err| format!("{err:#}"))?;
            let id = result.session_id().ok_or("its result names no session_id")?;
            let hooked = self.hooked(id);
            if !hooked.is_empty() {
                let events: Vec<&str> = hooked.iter().map(|h| h.event.as_str()).collect();
                return Err(format!("hooks ran all the same: {}", events.join(", ")));
            }
            let tools = |marker: &str| {
                let request = self.request_for(marker)?;
                let tools = request.body["tools"].as_array()?.iter();
                Some(tools.filter_map(|t| t["name"].as_str().map(str::to_owned)).collect::<Vec<_>>())
            };
            let (with, without) = (tools("probe one"), tools("probe hookless"));
            match (with, without) {
                (Some(with), Some(without)) if with == without => {
                    Ok(format!("no hook ran; the same {} tools as with hooks", with.len()))
                }
                (Some(with), Some(without)) => Err(format!(
                    "the model's tools differ: {} with hooks, {} without",
                    with.len(),
                    without.len()
                )),
                _ => Err("a turn's request did not reach the stand-in".into()),
            }
        })();
        let ok = seen.is_ok();
        Check { name: "hooks off for a kept claude", ok, detail: seen.unwrap_or_else(|why| why) }
    }

    fn hooks_fire(&self, hooked: &[Hooked]) -> Check {
        let names = [
            ("session-start", "SessionStart"),
            ("prompt-submit", "UserPromptSubmit"),
            ("stop", "Stop"),
            ("session-end", "SessionEnd"),
        ];
        let missing: Vec<&str> = names
            .into_iter()
            .filter(|(n, _)| !hooked.iter().any(|h| h.event == *n))
            .map(|(_, e)| e)
            .collect();
        let ok = missing.is_empty();
        check("hooks fire in -p", ok, || {
            if ok {
                "SessionStart, UserPromptSubmit, Stop, SessionEnd".to_owned()
            } else {
                format!("no {} hook ran (settings.json hooks)", missing.join(", "))
            }
        })
    }

    /// The fields clawsess reads, parsed with its own wire type.
    fn hook_fields(&self, hooked: &[Hooked], id: &str) -> Check {
        let mut wrong = Vec::new();
        let get = |event: &str| hooked.iter().find(|h| h.event == event);
        let parse = |h: &Hooked, name: EventName| {
            serde_json::from_value::<HookInput>(h.input.clone())
                .map_err(anyhow::Error::from)
                .and_then(|i| i.event(name))
        };
        if let Some(h) = get("session-start") {
            if let Err(err) = parse(h, EventName::SessionStart) {
                wrong.push(format!("SessionStart: {err:#}"));
            }
            if h.input.get("source").and_then(Value::as_str) != Some("startup") {
                wrong.push(format!("SessionStart source {} (want startup)", h.input["source"]));
            }
            let cwd = h.input.get("cwd").and_then(Value::as_str).map(PathBuf::from);
            if cwd.as_deref() != Some(&self.project) {
                wrong.push(format!("SessionStart cwd {}", h.input["cwd"]));
            }
            let path = h.input.get("transcript_path").and_then(Value::as_str).map(PathBuf::from);
            if path.as_deref() != Some(&self.transcript(id)) {
                wrong.push(format!(
                    "SessionStart transcript_path {} (want {})",
                    h.input["transcript_path"],
                    self.transcript(id).display()
                ));
            }
        }
        if let Some(h) = get("prompt-submit")
            && h.input.get("prompt").and_then(Value::as_str) != Some("probe one [probe-context]")
        {
            wrong.push(format!("UserPromptSubmit prompt {}", h.input["prompt"]));
        }
        if let Some(h) = get("stop")
            && h.input
                .get("last_assistant_message")
                .and_then(Value::as_str)
                .is_none_or(|m| !m.starts_with("stand-in reply"))
            && self.version >= versions::CHECKPOINTS_SEEN
        {
            wrong.push(format!("Stop last_assistant_message {}", h.input["last_assistant_message"]));
        }
        if let Some(h) = get("session-end")
            && let Ok((_, crate::turn::hooks::Event::SessionEnd { transcript })) =
                parse(h, EventName::SessionEnd)
            && transcript.as_deref() != Some(&self.transcript(id))
        {
            wrong.push(format!("SessionEnd transcript_path {}", h.input["transcript_path"]));
        }
        let ok = wrong.is_empty() && !hooked.is_empty();
        check("hook input fields", ok, || {
            if ok {
                "session_id, cwd, transcript_path, source, prompt, last_assistant_message".to_owned()
            } else if hooked.is_empty() {
                "no hook input recorded".to_owned()
            } else {
                wrong.join("; ")
            }
        })
    }

    /// The claude process a hook belongs to, as clawsess finds it; `CLAUDE_PID`,
    /// `CLAUDE_CODE_SESSION_ID`, `CLAUDE_ENV_FILE` from the versions that give them.
    fn hook_env(&self, hooked: &[Hooked], id: &str, claude_pid: u32) -> Check {
        let mut wrong = Vec::new();
        for h in hooked {
            // hook <- /bin/sh -c <- claude: the recording script's chain starts at its parent.
            let chain = h.chain();
            if !chain.iter().take(3).any(|&p| p == claude_pid) {
                wrong.push(format!(
                    "{}: claude (pid {claude_pid}) is not the hook's parent or grandparent ({chain:?})",
                    h.event
                ));
            }
            if self.version >= versions::CLAUDE_PID_FROM
                && h.env("CLAUDE_PID").and_then(|p| p.parse::<u32>().ok()).is_none_or(|p| !chain.contains(&p))
            {
                wrong.push(format!("{}: CLAUDE_PID {:?} is not an ancestor", h.event, h.env("CLAUDE_PID")));
            }
            if self.version >= versions::SESSION_ID_ENV_FROM && h.env("CLAUDE_CODE_SESSION_ID") != Some(id) {
                wrong.push(format!(
                    "{}: CLAUDE_CODE_SESSION_ID {:?}",
                    h.event,
                    h.env("CLAUDE_CODE_SESSION_ID")
                ));
            }
            if h.event == "session-start" && h.env("CLAUDE_ENV_FILE").is_none() {
                wrong.push("SessionStart: no CLAUDE_ENV_FILE".to_owned());
            }
        }
        wrong.dedup();
        let ok = wrong.is_empty() && !hooked.is_empty();
        check("hook env and process", ok, || {
            if ok {
                let mut seen = vec!["hook <- sh <- claude", "CLAUDE_ENV_FILE"];
                if self.version >= versions::CLAUDE_PID_FROM {
                    seen.push("CLAUDE_PID");
                }
                if self.version >= versions::SESSION_ID_ENV_FROM {
                    seen.push("CLAUDE_CODE_SESSION_ID");
                }
                seen.join(", ")
            } else if hooked.is_empty() {
                "no hook recorded".to_owned()
            } else {
                wrong.join("; ")
            }
        })
    }

    /// clawsess's own hooks recorded the session: its transcript and its claude process (the
    /// hook's parent or grandparent, as the recording hook beside it saw them).
    fn clawsess_records(&self, id: &str, chain: &[u32]) -> Check {
        let store = Store::at(&self.state);
        let found =
            crate::ident::SessionId::parse(id).ok().and_then(|sid| store.session(&sid).ok().flatten());
        let (ok, detail) = match found {
            None => (
                false,
                "clawsess's SessionStart hook recorded no session under the id the result reported"
                    .to_owned(),
            ),
            Some(rec) if rec.transcript != self.transcript(id) => (
                false,
                format!(
                    "recorded transcript {}, not {}",
                    rec.transcript.display(),
                    self.transcript(id).display()
                ),
            ),
            Some(rec) if !rec.processes.iter().any(|p| chain.iter().take(2).any(|c| c == p)) => (
                false,
                format!(
                    "recorded processes {:?}, not the hook's claude (its ancestors: {chain:?})",
                    rec.processes
                ),
            ),
            Some(_) => (true, "session, transcript and claude process recorded".to_owned()),
        };
        Check { name: "clawsess hooks record the session", ok, detail }
    }

    fn context_reaches_model(&self) -> Check {
        let ok = self.request_for("probe one").is_some_and(|r| r.all_text.contains(CONTEXT));
        check("additionalContext reaches the model", ok, || {
            if ok {
                "UserPromptSubmit's additionalContext is in the request".to_owned()
            } else {
                "the prompt hook's additionalContext is not in the request the model got".to_owned()
            }
        })
    }

    /// Where clawsess looks for the transcript, and what it reads there.
    fn transcript_lines(&self, path: &Path, hooked: &[Hooked]) -> Check {
        let named = hooked
            .iter()
            .find_map(|h| h.input.get("transcript_path").and_then(Value::as_str).map(PathBuf::from));
        let result = (|| -> std::result::Result<String, String> {
            if named.as_deref().is_some_and(|n| n != path) {
                return Err(format!(
                    "Claude Code named {}, clawsess looks at {}",
                    named.unwrap_or_default().display(),
                    path.display()
                ));
            }
            let messages = crate::transcript::last_messages(path, 10).map_err(|e| format!("{e:#}"))?;
            let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
            if !texts.iter().any(|t| t.contains("probe one"))
                || !texts.iter().any(|t| t.starts_with("stand-in reply"))
            {
                return Err(format!("clawsess reads no prompt and reply there (read {texts:?})"));
            }
            match crate::transcript::transcript_version(path) {
                Some(v) if v == self.version => {
                    Ok(format!("{} lines read; each names version {v}", messages.len()))
                }
                Some(v) => Err(format!("its lines name version {v}, not {}", self.version)),
                None => Err("its lines name no `version` (the checkpoint correction keys on it)".to_owned()),
            }
        })();
        match result {
            Ok(detail) => Check { name: "transcript", ok: true, detail },
            Err(detail) => Check { name: "transcript", ok: false, detail },
        }
    }

    /// After a `-p` turn: a `last-prompt` line naming the newest message, in the shape clawsess
    /// writes. `Ok((detail, written))`.
    fn checkpoint_shape(&self, path: &Path, id: &str) -> std::result::Result<(String, bool), String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("could not read {}: {e}", path.display()))?;
        let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let Some(at) = lines.iter().rposition(|l| l["type"] == "last-prompt") else {
            return if self.version >= versions::CHECKPOINTS_SEEN {
                Err(format!(
                    "no `last-prompt` checkpoint after a claude -p turn (written from {} on)",
                    versions::CHECKPOINTS_SEEN
                ))
            } else {
                Ok((
                    "none written (as before 2.1.328; a resume must follow the newest message)".to_owned(),
                    false,
                ))
            };
        };
        let line = &lines[at];
        let newest = branches::read(path, Reach::RESUME, "").map_err(|e| format!("{e:#}"))?;
        let leaf = line.get("leafUuid").and_then(Value::as_str);
        let mut wrong = Vec::new();
        if leaf.is_none() || leaf != newest.newest_leaf.as_deref() {
            wrong.push(format!("leafUuid {:?} is not the newest message {:?}", leaf, newest.newest_leaf));
        }
        if line.get("sessionId").and_then(Value::as_str) != Some(id) {
            wrong.push(format!("sessionId {}", line["sessionId"]));
        }
        if newest.stale_checkpoint {
            wrong.push("clawsess reads it as stale".to_owned());
        }
        if wrong.is_empty() {
            Ok((
                r#"{"type":"last-prompt","leafUuid":<newest message>,"sessionId":…} after the turn"#
                    .to_owned(),
                true,
            ))
        } else {
            Err(format!("last-prompt {line}: {}", wrong.join("; ")))
        }
    }

    fn refusal(&self, ran: Result<Ran>) -> Check {
        let name = "a refusal (exit 2) is a refused result";
        let result = match ran.and_then(|r| r.result()) {
            Ok(r) => r,
            Err(err) => return Check { name, ok: false, detail: format!("{err:#}") },
        };
        let asked = self.request_for("probe refused").is_some();
        let text_ok = self.version < versions::REFUSAL_TEXT_FROM
            || result.result().contains("refused by the clawsess probe");
        let ok = result.refused() && result.is_error() && !asked && text_ok;
        check(name, ok, || {
            if ok {
                format!("the model not asked; result {:?}", crate::sys::one_line(result.result(), 80))
            } else if asked {
                "the refused prompt reached the model".to_owned()
            } else {
                format!(
                    "clawsess does not read this result as refused: {}",
                    crate::sys::one_line(&Value::Object(result.fields.clone()).to_string(), 300)
                )
            }
        })
    }

    /// clawsess refuses a `claude -p` that is behind by SIGTERMing it from the prompt hook: the
    /// prompt must not reach the model and nothing may be added to the transcript (a line
    /// there would be a dead branch, a checkpoint on it a lost conversation).
    fn stopped(&self, id: &str, before: &[u8], ran: Result<Ran>) -> Check {
        let name = "SIGTERM at the prompt hook writes nothing";
        let ran = match ran {
            Ok(r) => r,
            Err(err) => return Check { name, ok: false, detail: format!("{err:#}") },
        };
        let after = std::fs::read(self.transcript(id)).unwrap_or_default();
        let added: Vec<String> = after
            .get(before.len()..)
            .unwrap_or_default()
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
            // Messages (they have a uuid) and checkpoints; not bookkeeping such as `cost-state`.
            .filter(|l| l.get("uuid").is_some() || l["type"] == "last-prompt")
            .map(|l| l["type"].as_str().unwrap_or("?").to_owned())
            .collect();
        let asked = self.request_for("probe stopped").is_some();
        let ok = !ran.ok && !asked && added.is_empty() && after.starts_with(before);
        check(name, ok, || {
            if ok {
                "the prompt not sent, the transcript as it was".to_owned()
            } else if ran.ok {
                "claude finished the turn though it was sent SIGTERM".to_owned()
            } else if asked {
                "the stopped prompt reached the model".to_owned()
            } else {
                format!("the transcript got lines of type {added:?}")
            }
        })
    }

    fn verbatim(&self, ran: Result<Ran>, prompt: &str) -> Check {
        let name = "stream-json input (client_composed)";
        let ran = match ran {
            Ok(r) => r,
            Err(err) => return Check { name, ok: false, detail: format!("{err:#}") },
        };
        let Some(result) = ran.stream_result() else {
            return Check {
                name,
                ok: false,
                detail: format!(
                    "no result line on stdout: {}",
                    crate::sys::one_line(&String::from_utf8_lossy(&ran.stderr), 300)
                ),
            };
        };
        let Some(request) = self.request_for("probe verbatim") else {
            return Check { name, ok: false, detail: "the message never reached the model".to_owned() };
        };
        let expanded = request.all_text.contains(FILE_TEXT);
        let as_written = request.last_user_text.contains(prompt);
        let want_verbatim = self.version >= versions::VERBATIM_FROM;
        let ok = !result.is_error() && if want_verbatim { as_written && !expanded } else { true };
        check(name, ok, || match (ok, want_verbatim) {
            (true, true) => "delivered as written (`@file` not read)".to_owned(),
            (true, false) => format!(
                "delivered; `@file` {} (verbatim only from {})",
                if expanded { "read" } else { "not read" },
                versions::VERBATIM_FROM
            ),
            _ if result.is_error() => format!("error result: {}", crate::sys::one_line(result.result(), 200)),
            _ => format!(
                "not as written: the model got {:?}{}",
                crate::sys::one_line(&request.last_user_text, 200),
                if expanded { " with the file's text" } else { "" }
            ),
        })
    }

    /// Two resumes at once fork the transcript; then a resume follows a checkpoint naming the
    /// older branch, and then clawsess's correction.
    fn resumes(&self, id: &str, transcript: &Path, checkpoints: bool) -> Vec<Check> {
        let mut checks = Vec::new();
        let resume = |prompt: &str| self.spawn(&["--output-format", "json", "--resume", id], prompt, false);
        let fork = (|| -> Result<(Ran, Ran)> {
            let held = resume("[hold=probe-fork] probe two")?;
            let arrived = self.api.wait_for(RUN_WAIT, |r| {
                r.iter().any(|r| r.is_main_turn && r.last_user_text.contains("probe two"))
            });
            let other = resume("probe three")?.wait();
            self.api.release("probe-fork");
            let held = held.wait()?;
            if !arrived {
                bail!("the first resume's request never reached the stand-in");
            }
            Ok((held, other?))
        })();
        let (two, three) = match fork {
            Ok(pair) => pair,
            Err(err) => {
                checks.push(Check {
                    name: "--resume keeps the session",
                    ok: false,
                    detail: format!("{err:#}"),
                });
                return checks;
            }
        };
        // SessionStart on --resume carries the real id; the result too.
        let resumed: Vec<Hooked> = self
            .hooked(id)
            .into_iter()
            .filter(|h| h.event == "session-start" && h.input["source"] == "resume")
            .collect();
        let ids: Vec<Option<String>> = [&two, &three]
            .iter()
            .map(|r| r.result().ok().and_then(|r| r.session_id().map(str::to_owned)))
            .collect();
        let reply_one = self.request_for("probe one").map(|r| r.reply).unwrap_or_default();
        let continued = self
            .request_for("probe three")
            .is_some_and(|r| r.all_text.contains(&reply_one) && r.message_count >= 3);
        let ok = resumed.len() >= 2 && ids.iter().all(|i| i.as_deref() == Some(id)) && continued;
        checks.push(check("--resume keeps the session", ok, || {
            if ok {
                "SessionStart (source resume) and the result carry the resumed id; the model gets the conversation".to_owned()
            } else if resumed.len() < 2 {
                format!("{} of 2 resumes fired SessionStart with source resume and the resumed id", resumed.len())
            } else if !continued {
                "the resumed turn's request does not hold the earlier turn".to_owned()
            } else {
                format!("the results name sessions {ids:?}, not {id}")
            }
        }));
        let reply = |marker: &str| self.request_for(marker).map(|r| r.reply).unwrap_or_default();
        let (reply_two, reply_three) = (reply("probe two"), reply("probe three"));
        let sid = id;
        // Which branch a resume continued: the replies the model got.
        let follows = |marker: &str, want: &str, not: &str| {
            self.request_for(marker).map(|r| (r.all_text.contains(want), r.all_text.contains(not)))
        };
        if !checkpoints {
            let four = resume("probe four").and_then(Running::wait);
            let seen = follows("probe four", &reply_two, &reply_three);
            let ok = four.is_ok() && seen == Some((true, false));
            checks.push(check("a resume follows the newest message", ok, || {
                if ok {
                    "no checkpoints: the branch written last is continued".to_owned()
                } else {
                    format!("the resume continued another branch (newest, older in the request: {seen:?})")
                }
            }));
            return checks;
        }
        // The older branch ends in "probe three"'s reply: a checkpoint naming it, as clawsess
        // writes one, must be followed.
        let leaf_of = |reply: &str| message_uuid(transcript, reply);
        let plant = |leaf: Option<String>, prompt: &str| -> Result<()> {
            let leaf = leaf.context("the reply's message is not in the transcript")?;
            let b = Branches {
                newest_leaf: Some(leaf),
                last_prompt: Some(prompt.to_owned()),
                stale_checkpoint: true,
                ..Branches::default()
            };
            branches::point_resume_at(transcript, sid, &b)?;
            Ok(())
        };
        let four = plant(leaf_of(&reply_three), "probe three").and_then(|()| resume("probe four")?.wait());
        let seen = follows("probe four", &reply_three, &reply_two);
        let ok = four.is_ok() && seen == Some((true, false));
        checks.push(check("a resume follows the newest checkpoint", ok, || match &four {
            Ok(_) if ok => {
                "a checkpoint naming the older branch (as clawsess writes it) is followed".to_owned()
            }
            Ok(_) => format!("not followed: the resume continued the newest message's branch ({seen:?})"),
            Err(err) => format!("{err:#}"),
        }));
        // Now "probe four" is the newest turn; a checkpoint naming "probe two"'s branch is
        // stale, and clawsess's correction must make the next resume follow the newest turn.
        let reply_four = reply("probe four");
        let corrected = (|| -> Result<bool> {
            plant(leaf_of(&reply_two), "probe two")?;
            let found = branches::read(transcript, Reach::RESUME, "")?;
            if !found.stale_checkpoint {
                bail!("clawsess does not read a checkpoint naming the other branch as stale");
            }
            let wrote = branches::point_resume_at(transcript, sid, &found)?;
            resume("probe five")?.wait()?;
            Ok(wrote)
        })();
        let seen = follows("probe five", &reply_four, &reply_two);
        let ok = corrected.as_ref().is_ok_and(|w| *w) && seen == Some((true, false));
        checks.push(check("the checkpoint correction is followed", ok, || match &corrected {
            Ok(_) if ok => "after a stale checkpoint, clawsess's is followed to the newest turn".to_owned(),
            Ok(false) => "clawsess wrote no correction".to_owned(),
            Ok(true) => format!("the resume did not follow the correction ({seen:?})"),
            Err(err) => format!("{err:#}"),
        }));
        checks
    }
}

/// The uuid of the transcript's assistant message whose text is `reply`.
fn message_uuid(path: &Path, reply: &str) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    text.split(|&b| b == b'\n')
        .rev()
        .filter(|line| {
            crate::transcript::parse_line(line)
                .is_some_and(|m| m.role == crate::transcript::Role::Assistant && m.text == reply)
        })
        .filter_map(|line| {
            serde_json::from_slice::<Value>(line).ok()?.get("uuid")?.as_str().map(str::to_owned)
        })
        .next()
}

fn check(name: &'static str, ok: bool, detail: impl FnOnce() -> String) -> Check {
    Check { name, ok, detail: detail() }
}

/// A claude run not yet waited for; killed if dropped so.
struct Running {
    pid: u32,
    child: std::process::Child,
    feeder: Option<thread::JoinHandle<()>>,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    /// Waits [`RUN_WAIT`] at most, then kills it.
    fn wait(mut self) -> Result<Ran> {
        let deadline = Instant::now() + RUN_WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                bail!("claude did not finish within {} s", RUN_WAIT.as_secs());
            }
            thread::sleep(Duration::from_millis(10));
        };
        let join = |h: Option<thread::JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        if let Some(feeder) = self.feeder.take() {
            let _ = feeder.join();
        }
        let (stdout, stderr) = (join(self.stdout.take()), join(self.stderr.take()));
        Ok(Ran { pid: self.pid, ok: status.success(), stdout, stderr })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // std does not signal a child it has already reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private dir under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let base = std::env::temp_dir().canonicalize().unwrap_or_else(|_| std::env::temp_dir());
        let dir =
            base.join(format!("clawsess-probe-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        store::create_private_dir(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `path` for `/bin/sh`, in single quotes.
fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_quoted_for_sh() {
        assert_eq!(sh_quote(Path::new("/tmp/a b/it's")), r"'/tmp/a b/it'\''s'");
    }
}
