//! Warm against cold `run` turns with the real Claude Code CLI and the stand-in Messages API
//! of the tests (`tests/support`): `cargo bench --bench warm`.
//!
//! For each transcript size (about 0.1, 1, 10 and 50 MB of synthesized turns in the shapes
//! the CLI writes, see `hot_paths/data.rs`) two copies of one session are made: one is
//! answered cold (`run`, which starts `claude -p --resume`), the other warm (`run --warm`,
//! whose claude stays up between turns). Their turns alternate, so drift of this machine hits
//! both alike. A turn's overhead is its wall time minus the time the stand-in took to answer
//! its requests. Then the transcript's growth over N turns, warm and cold, on the 1 MB size.
//! Needs `CLAWSESS_TEST_CLAUDE` (or installs the pinned CLI, as the tests do).
//!
//! `-- --quick`: fewer rounds and sizes (0.1 and 1 MB), 20 turns of growth.
//! `-- --sizes 0.1,1,10`: these sizes (MB). `-- --rounds N`, `-- --growth N`.
//!
//! `-- --bare`: instead, what a warm `run` adds to a bare claude kept open: per size, a bare
//! `claude -p --input-format stream-json --output-format stream-json` (the flags a keeper
//! starts it with, in a HOME without clawsess's hooks) fed the same prompts on its stdin,
//! against `run --warm` on a kept claude (without hooks where clawsess's are the only ones:
//! `claude::hookless`), and a third claude like the kept one (in clawsess's HOME, its hooks
//! off) fed by the bench, turns alternating, all against one stand-in API. `CLAWSESS_BENCH_BASE=PATH`: also a warm `run` of that clawsess build
//! (main, say), in a HOME of its own with its hooks: a before/after in the same run.

#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "hot_paths/data.rs"]
mod data;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::real_claude::{ClaudeHome, claude_code_version, run_with_stdin};
use support::stand_in_api::StandInApi;

/// What to do.
struct Plan {
    sizes_mb: Vec<f64>,
    rounds: usize,
    growth_turns: usize,
    bare: bool,
}

impl Plan {
    fn from_args() -> Plan {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        let quick = args.iter().any(|a| a == "--quick");
        let bare = args.iter().any(|a| a == "--bare");
        let mut plan = match (quick, bare) {
            (true, true) => Plan { sizes_mb: vec![0.1], rounds: 10, growth_turns: 0, bare },
            (false, true) => Plan { sizes_mb: vec![0.1, 50.0], rounds: 30, growth_turns: 0, bare },
            (true, false) => Plan { sizes_mb: vec![0.1, 1.0], rounds: 5, growth_turns: 20, bare },
            (false, false) => {
                Plan { sizes_mb: vec![0.1, 1.0, 10.0, 50.0], rounds: 15, growth_turns: 100, bare }
            }
        };
        if let Some(sizes) = value("--sizes") {
            plan.sizes_mb =
                sizes.split(',').map(|s| s.trim().parse().expect("--sizes: MB numbers")).collect();
        }
        if let Some(n) = value("--rounds") {
            plan.rounds = n.parse().expect("--rounds N");
        }
        if let Some(n) = value("--growth") {
            plan.growth_turns = n.parse().expect("--growth N");
        }
        plan
    }
}

/// One turn as measured.
struct Turn {
    wall: Duration,
    /// Time the stand-in spent answering this turn's requests.
    api: Duration,
    /// Messages in the turn's main request (the history it carried).
    messages: usize,
    warm: bool,
}

impl Turn {
    fn overhead_ms(&self) -> f64 {
        (self.wall.saturating_sub(self.api)).as_secs_f64() * 1e3
    }
}

struct Bench {
    home: ClaudeHome,
    project: PathBuf,
    /// The clawsess it runs, whose hooks are installed in its HOME.
    bin: PathBuf,
    /// The stand-in API its claudes ask (another bench's, for a side by side on one server).
    api_url: String,
}

impl Bench {
    fn new() -> Bench {
        Bench::of(Path::new(env!("CARGO_BIN_EXE_clawsess")), None)
    }

    /// A HOME with `bin` installed (as `./install.sh` would), its claudes asking `api_url`
    /// (else its own stand-in API).
    fn of(bin: &Path, api_url: Option<String>) -> Bench {
        let home = ClaudeHome::new();
        let project = home.project("bench");
        let api_url = api_url.unwrap_or_else(|| home.api.base_url());
        let bench = Bench { home, project, bin: bin.to_owned(), api_url };
        std::os::unix::fs::symlink(bin, bench.home.bin_dir().join("clawsess")).unwrap();
        bench.clawsess_ok(&["install"]);
        bench
    }

    /// `clawsess ARGS` (the bench's build) in HOME, with the home's environment.
    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = self.home.command(&self.bin);
        cmd.env("ANTHROPIC_BASE_URL", &self.api_url).args(args).current_dir(self.home.home());
        cmd
    }

    fn clawsess_ok(&self, args: &[&str]) {
        let out = run_with_stdin(&mut self.cmd(args), "", Duration::from_secs(120));
        assert!(out.status.success(), "clawsess {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A session of about `mb` MB (`import` records it): its id.
    fn session(&self, mb: f64) -> String {
        synthesize(&self.home, &self.project, mb)
    }

    /// One `clawsess run --json` turn on `session`; `warm`: with `--warm 30m`.
    fn turn(&self, session: &str, warm: bool, prompt: &str) -> Turn {
        self.turn_on(&self.home.api, session, warm, prompt)
    }

    /// [`Bench::turn`], its claude asking `api` (the one of `self.api_url`).
    fn turn_on(&self, api: &StandInApi, session: &str, warm: bool, prompt: &str) -> Turn {
        // The stand-in keeps every request body (tens of MB each on the big sessions): only
        // this turn's are kept, or copying them all would load this machine's two cores.
        api.clear();
        let mut args = vec!["run", "--json", "--session", session, "--cwd", self.project.to_str().unwrap()];
        if warm {
            args.extend(["--warm", "30m"]);
        }
        args.extend(["--", prompt]);
        let (out, wall) = timed(&mut self.cmd(&args));
        assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (api, messages) = answered(api);
        Turn { wall, api, messages, warm: result["warm"] == true }
    }

    fn transcript_len(&self, session: &str) -> u64 {
        fs::metadata(self.home.transcript_path(&self.project, session)).map(|m| m.len()).unwrap_or(0)
    }

    /// Peak RSS (VmHWM, KiB) of the warm claude of `session`.
    fn warm_claude_rss(&self, session: &str) -> Option<u64> {
        let note = self.home.state().join("warm").join(format!("{session}.json"));
        let note: Value = serde_json::from_str(&fs::read_to_string(note).ok()?).ok()?;
        let pid = note["claude"].as_u64()?;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = run_with_stdin(&mut self.cmd(&["cool"]), "", Duration::from_secs(120));
    }
}

/// The time the stand-in spent answering the requests it got since it was cleared, and the
/// messages the main one carried.
fn answered(api: &StandInApi) -> (Duration, usize) {
    let ours = api.requests();
    let ms: u64 = ours.iter().map(|r| r.finished_ms.saturating_sub(r.started_ms)).sum();
    let messages = ours.iter().filter(|r| r.is_main_turn).map(|r| r.message_count).max().unwrap_or(0);
    (Duration::from_millis(ms), messages)
}

/// A session of about `mb` MB in `home`'s `project`: its id.
fn synthesize(home: &ClaudeHome, project: &Path, mb: f64) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let path = home.transcript_path(project, &id);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    data::write_transcript(&path, (mb * 1e6) as u64, 4, &id);
    // The lines name the bench's cwd, as the CLI's own would.
    let text = fs::read_to_string(&path).unwrap().replace("/home/dev/project", project.to_str().unwrap());
    fs::write(&path, text).unwrap();
    id
}

/// A bare Claude Code kept open on stream-json, as a keeper keeps it (the same flags), in a
/// HOME without clawsess: what a warm `run` is compared with.
struct Bare {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Bare {
    /// Resumes `session` of `home`'s `project`, asking `api_url`.
    fn start(home: &ClaudeHome, project: &Path, session: &str, api_url: &str, extra: &[&str]) -> Bare {
        let mut cmd = home.command(home.claude());
        cmd.env("ANTHROPIC_BASE_URL", api_url)
            .current_dir(project)
            .args(["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"])
            .args(["--permission-prompt-tool", "stdio", "--resume", session])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("start a bare claude");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Bare { child, stdin, lines }
    }

    /// One turn: the prompt as a run sends it (`live::wire::user_message`, verbatim) on
    /// claude's stdin, timed until its result line.
    fn turn(&mut self, api: &StandInApi, prompt: &str) -> Turn {
        use std::io::Write;
        api.clear();
        let message = clawsess::live::wire::user_message(prompt, &[], true);
        let start = Instant::now();
        writeln!(self.stdin, "{message}").expect("the bare claude's stdin");
        self.stdin.flush().unwrap();
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(600)).expect("the bare claude's result");
            let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if value["type"] == "result" {
                let wall = start.elapsed();
                assert_eq!(value["is_error"], false, "the bare claude failed: {line}");
                let (api, messages) = answered(api);
                return Turn { wall, api, messages, warm: true };
            }
        }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` (nothing on its stdin) to its end: its output, and the time from its spawn to its
/// exit, waited for without polling (`run_with_stdin` looks every 10 ms, which would add 5 ms
/// on average to a turn of a few tens of ms).
fn timed(cmd: &mut std::process::Command) -> (std::process::Output, Duration) {
    use std::io::Read;
    use std::process::Stdio;
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn clawsess");
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let mut stdout = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut stdout).expect("clawsess's stdout");
    let status = child.wait().expect("wait for clawsess");
    let wall = start.elapsed();
    (std::process::Output { status, stdout, stderr: stderr.join().unwrap_or_default() }, wall)
}

/// Median, 10th and 90th percentile.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.1), q(0.9))
}

fn main() {
    let plan = Plan::from_args();
    if plan.bare {
        return bare(&plan);
    }
    let bench = Bench::new();
    let mut table = String::new();
    table.push_str(&format!(
        "Claude Code {} (real CLI) against the stand-in API; {} rounds per size, warm and cold \
         alternating; overhead = wall time minus the stand-in's answer time; ms as median \
         (p10-p90).\n\n",
        claude_code_version(),
        plan.rounds
    ));
    table.push_str("| transcript | cold `run` overhead | warm `run` overhead | cold/warm | messages carried | warm claude peak RSS |\n");
    table.push_str("|---|---:|---:|---:|---:|---:|\n");
    let mut growth_session = None;
    for &mb in &plan.sizes_mb {
        let cold_id = bench.session(mb);
        let warm_id = bench.session(mb);
        bench.home.clawsess_ok(&["import"]);
        let size = bench.transcript_len(&warm_id);
        // Not timed: the warm session's first turn starts its claude.
        let first = bench.turn(&warm_id, true, "warm up");
        assert!(!first.warm);
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        let mut carried = (usize::MAX, 0);
        for round in 0..plan.rounds {
            let c = bench.turn(&cold_id, false, &format!("cold turn {round}"));
            let w = bench.turn(&warm_id, true, &format!("warm turn {round}"));
            assert!(w.warm, "warm turn {round} of {mb} MB ran cold");
            assert!(!c.warm);
            carried = (carried.0.min(c.messages.min(w.messages)), carried.1.max(w.messages));
            cold.push(c.overhead_ms());
            warm.push(w.overhead_ms());
            eprintln!(
                "{mb} MB round {round}: cold {:.0} ms, warm {:.0} ms",
                c.overhead_ms(),
                w.overhead_ms()
            );
        }
        let rss = bench.warm_claude_rss(&warm_id).map_or("-".into(), |kb| format!("{} MB", kb / 1024));
        let (cm, c10, c90) = spread(cold);
        let (wm, w10, w90) = spread(warm);
        table.push_str(&format!(
            "| {:.1} MB | {cm:.0} ({c10:.0}-{c90:.0}) | {wm:.0} ({w10:.0}-{w90:.0}) | {:.1}x | {}-{} | {rss} |\n",
            size as f64 / 1e6,
            cm / wm,
            carried.0,
            carried.1
        ));
        if (mb - 1.0).abs() < 0.01 {
            growth_session = Some((cold_id.clone(), warm_id.clone()));
        }
        let _ = bench.home.clawsess(&["cool", &warm_id]);
    }
    if let Some((cold_id, warm_id)) = growth_session {
        table.push_str(&growth(&bench, &cold_id, &warm_id, plan.growth_turns));
    }
    println!("{table}");
    let out =
        Path::new(env!("CARGO_BIN_EXE_clawsess")).parent().unwrap().parent().unwrap().join("bench-warm.md");
    fs::write(&out, &table).expect("could not write the report");
    eprintln!("report written to {}", out.display());
}

/// The transcript's growth over `n` turns, warm and cold, on two copies of the 1 MB session.
fn growth(bench: &Bench, cold_id: &str, warm_id: &str, n: usize) -> String {
    let (cold0, warm0) = (bench.transcript_len(cold_id), bench.transcript_len(warm_id));
    for i in 0..n {
        bench.turn(cold_id, false, &format!("growth cold {i}"));
        bench.turn(warm_id, true, &format!("growth warm {i}"));
    }
    let cold = bench.transcript_len(cold_id) - cold0;
    let warm = bench.transcript_len(warm_id) - warm0;
    format!(
        "\nTranscript growth over {n} turns on the {:.1} MB session: cold {:.0} KB ({:.1} KB a turn), \
         warm {:.0} KB ({:.1} KB a turn).\n",
        cold0 as f64 / 1e6,
        cold as f64 / 1e3,
        cold as f64 / 1e3 / n as f64,
        warm as f64 / 1e3,
        warm as f64 / 1e3 / n as f64
    )
}

/// `CLAWSESS_BENCH_STRACE=DIR` (with `--bare`): one more warm turn of `id`, its `run` under
/// `strace -f -tt` (`DIR/run-MB.txt`) and its warm claude's hook processes too
/// (`DIR/claude-MB.txt`, strace attached to that claude): where the time goes, step by step.
/// `mb` names the files: `base-MB` for `CLAWSESS_BENCH_BASE`'s side.
fn trace(bench: &Bench, id: &str, dir: &Path, mb: &str) {
    fs::create_dir_all(dir).unwrap();
    let note = bench.home.state().join("warm").join(format!("{id}.json"));
    let note: Value = serde_json::from_str(&fs::read_to_string(note).unwrap()).unwrap();
    let claude = note["claude"].as_u64().unwrap().to_string();
    let on_claude = dir.join(format!("claude-{mb}.txt"));
    let mut attached = std::process::Command::new("strace")
        .args(["-f", "-tt", "-e", "trace=execve,exit_group,wait4,read,write", "-s", "80", "-o"])
        .arg(&on_claude)
        .args(["-p", &claude])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strace");
    // strace says on stderr once it is attached.
    let mut err = std::io::BufReader::new(attached.stderr.take().unwrap());
    let mut line = String::new();
    let _ = std::io::BufRead::read_line(&mut err, &mut line);
    let run = dir.join(format!("run-{mb}.txt"));
    let mut cmd = bench.home.command("strace");
    cmd.args(["-f", "-tt", "-s", "80", "-e"])
        .arg("trace=execve,openat,connect,fsync,fdatasync,flock,rename,unlink,read,write,exit_group,wait4,nanosleep,clock_nanosleep")
        .arg("-o")
        .arg(&run)
        .arg(&bench.bin)
        .args(["run", "--json", "--session", id, "--cwd", bench.project.to_str().unwrap(), "--warm", "30m", "--", "traced"]);
    cmd.env("ANTHROPIC_BASE_URL", &bench.api_url).current_dir(bench.home.home());
    let out = run_with_stdin(&mut cmd, "", Duration::from_secs(600));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // SAFETY: SIGINT to the strace this bench started: it detaches.
    unsafe { libc::kill(attached.id() as libc::pid_t, libc::SIGINT) };
    let _ = attached.wait();
    eprintln!("traced: {} and {}", run.display(), on_claude.display());
}

/// `--bare`: a warm `run` (and `CLAWSESS_BENCH_BASE`'s) against a bare claude kept open, on
/// copies of one session per size, turns alternating (their order turns round every round).
fn bare(plan: &Plan) {
    let ours = Bench::new();
    let url = ours.home.api.base_url();
    let api = &ours.home.api;
    let base = std::env::var_os("CLAWSESS_BENCH_BASE").map(|b| Bench::of(Path::new(&b), Some(url.clone())));
    let plain = ClaudeHome::new();
    let plain_project = plain.project("bench");
    let mut table = format!(
        "Claude Code {} (real CLI) against one stand-in API; {} rounds per size, the sides \
         alternating; overhead = wall time minus the stand-in's answer time (a bare claude's: \
         from its prompt line written to its result line read); ms as median (p10-p90); added = \
         the round's warm `run` minus the round's bare claude.\n\n",
        claude_code_version(),
        plan.rounds
    );
    table.push_str(
        "| transcript | bare claude | bare, clawsess's HOME | warm `run` | added | of it, `run`'s own |",
    );
    if base.is_some() {
        table.push_str(" base warm `run` | base added |");
    }
    table.push_str("\n|---|---:|---:|---:|---:|---:|");
    if base.is_some() {
        table.push_str("---:|---:|");
    }
    table.push('\n');
    for &mb in &plan.sizes_mb {
        let id = ours.session(mb);
        ours.clawsess_ok(&["import"]);
        let size = ours.transcript_len(&id);
        let plain_id = synthesize(&plain, &plain_project, mb);
        let base_id = base.as_ref().map(|b| {
            let id = b.session(mb);
            b.clawsess_ok(&["import"]);
            id
        });
        // The same claude as the kept one (clawsess's HOME: its commands, its settings, its
        // hooks off as the keeper turns them off), fed by the bench: what is left of "added"
        // after it is the `run` process and the keeper's relay.
        let installed_id = ours.session(mb);
        ours.clawsess_ok(&["import"]);
        // Not timed: each side's first turn starts its claude.
        let mut bare = Bare::start(&plain, &plain_project, &plain_id, &url, &[]);
        bare.turn(api, "warm up");
        let hooks_off = ["--settings", clawsess::claude::hookless::SETTINGS];
        let mut installed = Bare::start(&ours.home, &ours.project, &installed_id, &url, &hooks_off);
        installed.turn(api, "warm up");
        assert!(!ours.turn(&id, true, "warm up").warm);
        if let (Some(b), Some(id)) = (&base, &base_id) {
            assert!(!b.turn_on(api, id, true, "warm up").warm);
        }
        let (mut bare_ms, mut warm_ms, mut base_ms) = (Vec::new(), Vec::new(), Vec::new());
        let (mut added, mut base_added) = (Vec::new(), Vec::new());
        let (mut installed_ms, mut own) = (Vec::new(), Vec::new());
        for round in 0..plan.rounds {
            let prompt = format!("turn {round}");
            let mut sides: Vec<u8> = if base.is_some() { vec![0, 1, 3, 2] } else { vec![0, 1, 3] };
            let n = sides.len();
            sides.rotate_left(round % n);
            let (mut b, mut w, mut o, mut i) = (0.0, 0.0, None, 0.0);
            for side in sides {
                match side {
                    0 => b = bare.turn(api, &prompt).overhead_ms(),
                    3 => i = installed.turn(api, &prompt).overhead_ms(),
                    1 => {
                        let t = ours.turn(&id, true, &prompt);
                        assert!(t.warm, "warm turn {round} of {mb} MB ran cold");
                        w = t.overhead_ms();
                    }
                    _ => {
                        let t = base.as_ref().unwrap().turn_on(api, base_id.as_ref().unwrap(), true, &prompt);
                        assert!(t.warm, "base warm turn {round} of {mb} MB ran cold");
                        o = Some(t.overhead_ms());
                    }
                }
            }
            eprintln!(
                "{mb} MB round {round}: bare {b:.1} ms, bare in clawsess's HOME {i:.1} ms, warm run {w:.1} ms, base {o:.1?}"
            );
            bare_ms.push(b);
            installed_ms.push(i);
            warm_ms.push(w);
            added.push(w - b);
            own.push(w - i);
            if let Some(o) = o {
                base_ms.push(o);
                base_added.push(o - b);
            }
        }
        let show = |v: Vec<f64>| {
            let (m, lo, hi) = spread(v);
            format!("{m:.1} ({lo:.1}-{hi:.1})")
        };
        table.push_str(&format!(
            "| {:.1} MB | {} | {} | {} | {} | {} |",
            size as f64 / 1e6,
            show(bare_ms),
            show(installed_ms),
            show(warm_ms),
            show(added),
            show(own)
        ));
        if base.is_some() {
            table.push_str(&format!(" {} | {} |", show(base_ms), show(base_added)));
        }
        table.push('\n');
        if let Some(dir) = std::env::var_os("CLAWSESS_BENCH_STRACE") {
            trace(&ours, &id, Path::new(&dir), &mb.to_string());
            if let (Some(b), Some(id)) = (&base, &base_id) {
                trace(b, id, Path::new(&dir), &format!("base-{mb}"));
            }
        }
        let _ = run_with_stdin(&mut ours.cmd(&["cool", &id]), "", Duration::from_secs(120));
        if let (Some(b), Some(id)) = (&base, &base_id) {
            let _ = run_with_stdin(&mut b.cmd(&["cool", id]), "", Duration::from_secs(120));
        }
    }
    println!("{table}");
    let out = Path::new(env!("CARGO_BIN_EXE_clawsess"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("bench-warm-bare.md");
    fs::write(&out, &table).expect("could not write the report");
    eprintln!("report written to {}", out.display());
}
