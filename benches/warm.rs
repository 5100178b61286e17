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

/// What to do.
struct Plan {
    sizes_mb: Vec<f64>,
    rounds: usize,
    growth_turns: usize,
}

impl Plan {
    fn from_args() -> Plan {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        let quick = args.iter().any(|a| a == "--quick");
        let mut plan = if quick {
            Plan { sizes_mb: vec![0.1, 1.0], rounds: 5, growth_turns: 20 }
        } else {
            Plan { sizes_mb: vec![0.1, 1.0, 10.0, 50.0], rounds: 15, growth_turns: 100 }
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
}

impl Bench {
    fn new() -> Bench {
        let home = ClaudeHome::new();
        home.install_clawsess();
        let project = home.project("bench");
        Bench { home, project }
    }

    /// A session of about `mb` MB, recorded by clawsess: its id.
    fn session(&self, mb: f64) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let path = self.home.transcript_path(&self.project, &id);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        data::write_transcript(&path, (mb * 1e6) as u64, 4, &id);
        // The lines name the bench's cwd, as the CLI's own would.
        let text =
            fs::read_to_string(&path).unwrap().replace("/home/dev/project", self.project.to_str().unwrap());
        fs::write(&path, text).unwrap();
        id
    }

    /// One `clawsess run --json` turn on `session`; `warm`: with `--warm 30m`.
    fn turn(&self, session: &str, warm: bool, prompt: &str) -> Turn {
        // The stand-in keeps every request body (tens of MB each on the big sessions): only
        // this turn's are kept, or copying them all would load this machine's two cores.
        self.home.api.clear();
        let mut args = vec!["run", "--json", "--session", session, "--cwd", self.project.to_str().unwrap()];
        if warm {
            args.extend(["--warm", "30m"]);
        }
        args.extend(["--", prompt]);
        let mut cmd = self.home.clawsess_cmd(&args);
        let start = Instant::now();
        let out = run_with_stdin(&mut cmd, "", Duration::from_secs(600));
        let wall = start.elapsed();
        assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ours = self.home.api.requests();
        let api: u64 = ours.iter().map(|r| r.finished_ms.saturating_sub(r.started_ms)).sum();
        let messages = ours.iter().filter(|r| r.is_main_turn).map(|r| r.message_count).max().unwrap_or(0);
        Turn { wall, api: Duration::from_millis(api), messages, warm: result["warm"] == true }
    }

    fn transcript_len(&self, session: &str) -> u64 {
        fs::metadata(self.home.transcript_path(&self.project, session)).map(|m| m.len()).unwrap_or(0)
    }

    /// Peak RSS (VmHWM, KiB) of the warm claude of `session`.
    fn warm_claude_rss(&self, session: &str) -> Option<u64> {
        let note = self.home.home().join(".local/share/clawsess/warm").join(format!("{session}.json"));
        let note: Value = serde_json::from_str(&fs::read_to_string(note).ok()?).ok()?;
        let pid = note["claude"].as_u64()?;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.home.clawsess(&["cool"]);
    }
}

/// Median, 10th and 90th percentile.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.1), q(0.9))
}

fn main() {
    let plan = Plan::from_args();
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
