//! The hot paths of the release binary, measured as users meet them: one process per call.
//!
//! `cargo bench --bench hot_paths` builds `--release`, records 10,000 sessions through the
//! real hook from 8 parallel writers, then times every case side by side (round-robin, so
//! drift of this machine's speed hits every case alike) and prints a markdown table with
//! medians, spread, peak RSS and whether each target holds. The table is also written to
//! `target/bench-report.md`. `-- --quick` runs a smaller version (1,000 sessions, a 64 MiB
//! transcript) for a fast look; its numbers are not the ones the targets are about.
//! `-- --only TEXT` times only the fast cases whose name contains TEXT (and the floor), and
//! none of the slow ones (`list`, `import`).
//! See docs/BENCHMARKS.md.
//!
//! The same executable doubles as the stand-in `claude` (and as a checker of `list --json`
//! output), chosen by `ROLE_ENV`: a compiled program answering at once, so `run`'s own
//! overhead is what the difference shows.

mod data;
mod measure;
mod report;
mod roles;

use std::fs;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use data::{encode_cwd, hook_json, session_ids, transcript_bytes, unique_prefix, write_transcript};
use measure::{Sample, Spawn, Spec, Stats, measure, try_measure};
use report::{fs_type, human_bytes, report};

/// The release binary cargo built for this benchmark.
const CLAWSESS: &str = env!("CARGO_BIN_EXE_clawsess");
/// Benchmarks another build instead (a profile variant, a patched tree); the report says so.
const BIN_ENV: &str = "CLAWSESS_BENCH_BIN";
/// Also times this other build (main, say) on every timed clawsess case, right after the
/// case in each round and on the same state: a before/after in one run. Its rows are named
/// `base: ...`.
const BASE_ENV: &str = "CLAWSESS_BENCH_BASE";
const ROLE_ENV: &str = "CLAWSESS_BENCH_ROLE";
/// How many sessions to record (10,000 by default, 1,000 with `--quick`).
const SESSIONS_ENV: &str = "CLAWSESS_BENCH_SESSIONS";
const FLOOR: &str = "/bin/true";
/// Forked runs per case for peak RSS.
const RSS_RUNS: usize = 5;
/// Timed runs of `list --json` after record writes (each after its own writes).
const MASS_WRITE_RUNS: usize = 5;

/// One JSON-RPC line calling `tool`.
fn mcp_line(tool: &str, args: serde_json::Value) -> Vec<u8> {
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}});
    format!("{call}\n").into_bytes()
}

fn main() {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("claude") => std::process::exit(roles::stand_in_claude()),
        Ok("check-list") => std::process::exit(roles::check_list()),
        _ => {}
    }
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let mut plan = if quick { Plan::QUICK } else { Plan::FULL };
    if let Some(n) = std::env::var(SESSIONS_ENV).ok().filter(|n| !n.is_empty()) {
        plan.sessions = n.parse().unwrap_or_else(|_| panic!("{SESSIONS_ENV} must be a number, not {n:?}"));
        assert!(plan.sessions >= 16, "{SESSIONS_ENV} must be at least 16");
    }
    let report = Bench::new(plan, only).run();
    println!("{report}");
    let out = Path::new(CLAWSESS)
        .parent()
        .and_then(Path::parent)
        .expect("the binary lives in target/<profile>/")
        .join("bench-report.md");
    fs::write(&out, &report).expect("could not write the report");
    eprintln!("report written to target/{}", out.file_name().unwrap().to_string_lossy());
}

/// Timed runs of `import` (each into a fresh state dir: it writes a record per session).
const IMPORT_RUNS: usize = 3;

/// How much to do.
#[derive(Clone, Copy)]
struct Plan {
    sessions: usize,
    writers: usize,
    /// Rounds of the fast cases (each round runs every fast case once).
    rounds: usize,
    /// Runs of `list --json`.
    list_runs: usize,
    big_transcript: u64,
}

impl Plan {
    const FULL: Plan =
        Plan { sessions: 10_000, writers: 8, rounds: 200, list_runs: 25, big_transcript: 1 << 30 };
    const QUICK: Plan =
        Plan { sessions: 1_000, writers: 8, rounds: 40, list_runs: 5, big_transcript: 64 << 20 };
}

/// Builds the next run of a case; the argument is the round number.
type MakeSpec<'a> = Box<dyn Fn(usize) -> Spec + 'a>;

struct Case<'a> {
    name: String,
    make: MakeSpec<'a>,
    samples: Vec<Sample>,
    /// Peak RSS (KiB) of the forked runs.
    rss_kb: Vec<i64>,
    /// The `base:` twin of the case before it: the two swap places every other round, so
    /// that neither always runs on what the other left warm.
    twin: bool,
}

impl<'a> Case<'a> {
    /// A case with no runs yet.
    fn new(name: String, make: MakeSpec<'a>) -> Self {
        Case { name, make, samples: Vec::new(), rss_kb: Vec::new(), twin: false }
    }
}

struct Bench {
    plan: Plan,
    /// Keeps the temp dir alive; everything the benchmark writes is under it.
    _tmp: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    claude_dir: PathBuf,
    /// Where `run` starts its sessions (and the stand-in claude runs).
    work: PathBuf,
    ids: Vec<String>,
    /// The bench process itself: a live pid for `$CLAUDE_PID`.
    pid: u32,
    /// `--only TEXT`: time only the fast cases whose name contains TEXT.
    only: Option<String>,
}

/// The results, in table order.
struct Results {
    rows: Vec<(String, Stats)>,
    throughput: Throughput,
    sessions_listed: usize,
}

struct Throughput {
    hooks: usize,
    writers: usize,
    wall: Duration,
    latency: Stats,
    /// The slowest single hook: what a hook budget (SessionEnd's 1.5 s) is about.
    latency_max_ms: f64,
    /// Recorded ids missing from `list --json` right after the parallel writers.
    lost: usize,
    /// Hooks that exited non-zero or said something on stderr.
    failed: usize,
    /// Entries `list --json` had then.
    listed: usize,
}

impl Bench {
    fn new(plan: Plan, only: Option<String>) -> Bench {
        let tmp =
            tempfile::Builder::new().prefix("clawsess-bench-").tempdir().expect("could not make a temp dir");
        let root = tmp.path().canonicalize().unwrap();
        let bench = Bench {
            plan,
            state: root.join("state"),
            claude_dir: root.join("claude"),
            work: root.join("work"),
            root,
            _tmp: tmp,
            ids: session_ids(plan.sessions),
            pid: std::process::id(),
            only,
        };
        fs::create_dir_all(&bench.work).unwrap();
        fs::create_dir_all(&bench.claude_dir).unwrap();
        bench
    }

    /// A clean environment: nothing of the caller's Claude Code, state dir or home leaks in.
    fn env(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // Kept so that a measuring shim (one that makes fsync a no-op, say) reaches the
            // children; the report says when one was set.
            .env("LD_PRELOAD", std::env::var_os("LD_PRELOAD").unwrap_or_default())
            .env("HOME", &self.root)
            .env("CLAWSESS_HOME", &self.state)
            .env("CLAUDE_CONFIG_DIR", &self.claude_dir)
            .current_dir(&self.work);
    }

    fn clawsess<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(binary());
        self.env(&mut cmd);
        cmd.args(args);
        cmd
    }

    /// A hook as Claude Code runs it: `$CLAUDE_PID` set to a live process, JSON on stdin.
    fn hook(&self, event: &str, input: Vec<u8>) -> Spec {
        let mut cmd = self.clawsess(["hook", event]);
        cmd.env("CLAUDE_PID", self.pid.to_string());
        Spec { cmd, stdin: Some(input) }
    }

    fn transcript_of(&self, id: &str, cwd: &Path) -> PathBuf {
        self.claude_dir.join("projects").join(encode_cwd(cwd)).join(format!("{id}.jsonl"))
    }

    fn project(&self, i: usize) -> PathBuf {
        self.root.join("projects").join(format!("project-{:02}", i % 16))
    }

    fn hook_input(&self, i: usize, source: &str) -> Vec<u8> {
        let cwd = self.project(i);
        hook_json(&self.ids[i], &self.transcript_of(&self.ids[i], &cwd), &cwd, source)
    }

    fn run(self) -> String {
        eprintln!("clawsess bench: temp dir on {}", fs_type(&self.root));
        let throughput = self.populate();
        let sessions_listed = self.list_ids().0;
        let (small, big) = self.transcripts();
        let run_session = self.prepare_run();
        let mut fast = self.fast_cases(&small, &big, &run_session);
        if self.only.is_some() {
            let mut i = 0;
            fast.retain(|case| {
                i += 1;
                i == 1 || self.wanted(&case.name)
            });
        }
        if let Some(base) = std::env::var_os(BASE_ENV).filter(|b| !b.is_empty()) {
            fast = self.with_base(fast, PathBuf::from(base));
        }
        self.time_round_robin(&mut fast, self.plan.rounds);
        let slow = self.slow_cases();
        let _ = fs::remove_file(&big); // 1 GiB: do not wait for the temp dir's cleanup
        let rows = fast
            .into_iter()
            .chain(slow)
            .map(|c| {
                let mut stats = Stats::of(&c.samples);
                stats.max_rss_kb = c.rss_kb.iter().copied().max().unwrap_or(0);
                (c.name, stats)
            })
            .collect();
        let results = Results { rows, throughput, sessions_listed };
        if std::env::var_os("CLAWSESS_BENCH_KEEP").is_some() {
            let kept = self._tmp.keep();
            eprintln!("clawsess bench: kept the state in {}", kept.display());
        }
        report(&self.plan, &results, &self.root)
    }

    /// Whether `--only` asks for the case `name`: it has one of the comma-separated texts.
    fn wanted(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.split(',').any(|text| name.contains(text)))
    }

    /// `list --json`, and `import` into an empty state and again (those of them `--only`
    /// asks for).
    fn slow_cases(&self) -> Vec<Case<'_>> {
        let writes = self.mass_writes();
        // Which `source` the next mass writes give: each call's differs from the last's, so
        // that every write changes the record (a durable write, journaled).
        let calls = std::cell::Cell::new(0usize);
        let mut slow = vec![Case::new(
            format!("`list --json` ({} sessions)", self.plan.sessions),
            Box::new(|_| Spec { cmd: self.clawsess(["list", "--json"]), stdin: None }),
        )];
        // Each run after its own writes (about 3,200 hooks at 100,000 sessions): fewer runs.
        let mut after_writes = vec![Case::new(
            format!("`list --json` after {writes} record writes ({} sessions)", self.plan.sessions),
            Box::new(move |_| {
                let call = calls.get();
                calls.set(call + 1);
                self.write_records(writes, if call.is_multiple_of(2) { "resume" } else { "clear" });
                Spec { cmd: self.clawsess(["list", "--json"]), stdin: None }
            }),
        )];
        for (cases, runs, rss_runs) in
            [(&mut slow, self.plan.list_runs, RSS_RUNS), (&mut after_writes, MASS_WRITE_RUNS, 1)]
        {
            cases.retain(|case| self.wanted(&case.name));
            if let Some(base) = std::env::var_os(BASE_ENV).filter(|b| !b.is_empty()) {
                *cases = self.with_base(std::mem::take(cases), PathBuf::from(base));
            }
            if !cases.is_empty() {
                self.time_round_robin_rss(cases, runs, rss_runs);
            }
        }
        slow.extend(after_writes);
        // `import` of every session's transcript into an empty state dir (a fresh one each
        // run), then again into the one it just filled (all recorded: reads, no writes).
        let import = move |round: usize| {
            let mut cmd = self.clawsess(["import"]);
            cmd.env("CLAWSESS_HOME", self.root.join(format!("import-state-{round}")));
            Spec { cmd, stdin: None }
        };
        let mut imports = vec![
            Case::new(
                format!("`import` of {} transcripts into an empty state", self.plan.sessions),
                Box::new(import),
            ),
            Case::new("`import` again (every session already recorded)".into(), Box::new(import)),
        ];
        imports.retain(|case| self.wanted(&case.name));
        if imports.is_empty() {
            return slow;
        }
        self.time_round_robin(&mut imports, IMPORT_RUNS);
        slow.extend(imports);
        slow
    }

    /// How many record writes the "after record writes" case makes before each `list`: more
    /// than a reader takes from their files before it rebuilds the sessions index (a 32nd of
    /// the records, at least 512), so every such `list` rebuilds it.
    fn mass_writes(&self) -> usize {
        (self.plan.sessions / 32 + 100).max(600).min(self.plan.sessions)
    }

    /// Writes the records of the first `n` sessions again, through the real session-start hook
    /// (from the parallel writers) with `source`: a durable write of each record, untimed.
    fn write_records(&self, n: usize, source: &str) {
        let writers = self.plan.writers;
        std::thread::scope(|s| {
            for w in 0..writers {
                s.spawn(move || {
                    for i in (w..n).step_by(writers) {
                        measure(
                            self.hook("session-start", self.hook_input(i, source)),
                            "mass write",
                            Spawn::Spawn,
                        );
                    }
                });
            }
        });
    }

    /// The throughput case, which also records the sessions every other case runs against:
    /// every session goes through the real session-start hook, from parallel writers.
    fn populate(&self) -> Throughput {
        eprintln!(
            "clawsess bench: recording {} sessions with {} parallel hook writers...",
            self.plan.sessions, self.plan.writers
        );
        // Each session has a small transcript, as it would (list looks for it).
        let small = transcript_bytes(2 * 1024, 2, "seed");
        for (i, id) in self.ids.iter().enumerate() {
            let path = self.transcript_of(id, &self.project(i));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &small).unwrap();
            fs::create_dir_all(self.project(i)).unwrap();
        }
        let writers = self.plan.writers;
        let start = Instant::now();
        let per_writer: Vec<Vec<(Duration, Option<String>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..writers)
                .map(|w| {
                    s.spawn(move || {
                        (w..self.ids.len())
                            .step_by(writers)
                            .map(|i| {
                                let spec = self.hook("session-start", self.hook_input(i, "startup"));
                                let start = Instant::now();
                                let failed = try_measure(spec, Spawn::Spawn).err();
                                (start.elapsed(), failed)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wall = start.elapsed();
        let runs: Vec<_> = per_writer.into_iter().flatten().collect();
        let errors: Vec<&String> = runs.iter().filter_map(|(_, e)| e.as_ref()).collect();
        let failed = errors.len();
        let latency: Vec<Sample> =
            runs.iter().map(|(wall, _)| Sample { wall: *wall, maxrss_kb: 0 }).collect();
        let (listed, found) = self.list_ids();
        let lost = self.ids.len() - found;
        if lost > 0 || failed > 0 {
            eprintln!(
                "clawsess bench: {lost} sessions lost, {failed} hooks failed, the first: {}",
                errors.first().map_or("", |e| e.as_str())
            );
            self.repair();
        }
        Throughput {
            hooks: runs.len(),
            writers,
            wall,
            latency_max_ms: latency.iter().map(|s| s.wall.as_secs_f64() * 1e3).fold(0.0, f64::max),
            latency: Stats::of(&latency),
            lost,
            failed,
            listed,
        }
    }

    /// Records, one at a time, the sessions the parallel writers lost, so that every other
    /// case still runs at the full count.
    fn repair(&self) {
        for i in 0..self.ids.len() {
            let record = self.state.join("sessions").join(format!("{}.json", self.ids[i]));
            if !record.exists() {
                let spec = self.hook("session-start", self.hook_input(i, "startup"));
                measure(spec, "hook session-start (repair)", Spawn::Spawn);
            }
        }
        let (listed, found) = self.list_ids();
        assert!(
            listed == self.ids.len() && found == listed,
            "after repair `list --json` has {listed} entries, {found} of the recorded ids"
        );
    }

    /// How many entries `list --json` has, and how many of them are distinct ids this
    /// benchmark recorded. The check runs in a child (this executable, as `check-list`) so
    /// that parsing megabytes of JSON does not raise this process's peak RSS.
    fn list_ids(&self) -> (usize, usize) {
        let ids_file = self.root.join("ids.txt");
        fs::write(&ids_file, self.ids.join("\n")).unwrap();
        let mut list = self.clawsess(["list", "--json"]).stdout(Stdio::piped()).spawn().unwrap();
        let mut check = Command::new(std::env::current_exe().unwrap());
        check
            .env(ROLE_ENV, "check-list")
            .env("CLAWSESS_BENCH_IDS", &ids_file)
            .stdin(list.stdout.take().unwrap());
        let out = check.output().unwrap();
        assert!(list.wait().unwrap().success(), "list --json failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let counts: Vec<usize> = text.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        match counts[..] {
            [listed, found] if out.status.success() => (listed, found),
            _ => panic!("could not check `list --json`: {text}{}", String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// The 2 KB and the big transcript `show` reads, each given to a recorded session (a
    /// resume of it, so the count stays).
    fn transcripts(&self) -> (String, PathBuf) {
        let (small_id, big_id) = (&self.ids[1], &self.ids[2]);
        let small_path = self.root.join("small.jsonl");
        fs::write(&small_path, transcript_bytes(2 * 1024, 2, small_id)).unwrap();
        let big_path = self.root.join("big.jsonl");
        let need = self.plan.big_transcript + (256 << 20);
        let free = free_bytes(&self.root);
        assert!(
            free > need,
            "the big transcript needs {} MiB free in the temp dir, there are {} MiB \
             (set TMPDIR to a roomier place)",
            need >> 20,
            free >> 20
        );
        eprintln!("clawsess bench: writing a {} MiB transcript...", self.plan.big_transcript >> 20);
        write_transcript(&big_path, self.plan.big_transcript, 4, big_id);
        for (i, path) in [(1, &small_path), (2, &big_path)] {
            let cwd = self.project(i);
            let input = hook_json(&self.ids[i], path, &cwd, "resume");
            measure(self.hook("session-start", input), "hook session-start", Spawn::Spawn);
        }
        for id in [small_id, big_id] {
            let out = self.clawsess(["show", id, "-n", "3"]).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.matches("── ").count() == 3,
                "show {id} -n 3 did not print 3 messages: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let out = self.clawsess(["show", "--topic", id]).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("prompts, the first") && text.contains("last reply:"),
                "show --topic {id} did not print a topic: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.check_mcp("sessions_history", json!({"session": big_id}), "turns");
        self.check_mcp("sessions_list", json!({"last_n": 200}), "session_id");
        (small_id.clone(), big_path)
    }

    /// The first `run` of a key starts its session (the stand-in writes its transcript, as
    /// claude does); the timed runs then resume it, like a bot's every message.
    fn prepare_run(&self) -> String {
        let out = self.run_cmd().stdin(Stdio::null()).output().expect("could not start clawsess run");
        assert!(
            out.status.success() && out.stdout == b"ok\n",
            "run through the stand-in claude failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.clawsess(["current", "--key", "bench:run"]).output().unwrap();
        assert!(out.status.success(), "run recorded no own session");
        let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        // Bots attach too: `current` and `attach` then have a key file to read.
        let ok = self.clawsess(["attach", &self.ids[3], "--key", "bench:current"]).output().unwrap();
        assert!(ok.status.success(), "attach failed");
        id
    }

    /// `clawsess mcp` answering one `tools/call` (it ends at the end of its stdin, once the
    /// answer is out): the server's start-up and the tool, as one call of the model costs
    /// when the server is started for it.
    fn mcp<'a>(&'a self, tool: &str, args: serde_json::Value) -> MakeSpec<'a> {
        let line = mcp_line(tool, args);
        Box::new(move |_| Spec { cmd: self.clawsess(["mcp"]), stdin: Some(line.clone()) })
    }

    /// A tools/call through `clawsess mcp` answered without a tool error.
    fn check_mcp(&self, tool: &str, args: serde_json::Value, expect: &str) {
        let mut child = self.clawsess(["mcp"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &mcp_line(tool, args)).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(r#""isError":false"#) && text.contains(expect),
            "mcp {tool} did not answer with {expect:?}: {text}"
        );
    }

    fn run_cmd(&self) -> Command {
        let mut cmd = self.clawsess(["run", "--key", "bench:run", "--claude"]);
        cmd.arg(std::env::current_exe().unwrap()).args(["--", "hello"]).env(ROLE_ENV, "claude");
        cmd
    }

    fn fast_cases<'a>(&'a self, small: &'a str, big: &'a Path, run_session: &'a str) -> Vec<Case<'a>> {
        let n = self.plan.sessions;
        let case = Case::new;
        let plain = |args: Vec<String>| -> MakeSpec<'a> {
            Box::new(move |_| Spec { cmd: self.clawsess(&args), stdin: None })
        };
        // Hook cases start and end sessions among the recorded ones (so the count stays);
        // prompt-submit and stop take turns on one session, as a person's prompts do.
        let cycled = move |round: usize| 10 + round % (n - 10);
        let prompted = 4;
        let seed_out = self.root.join("seed-session-id");
        let big_id = self.ids[2].clone();
        let prefix = unique_prefix(&self.ids, 5);
        let mut cases = vec![case(
            format!("`{FLOOR}` (floor: spawn + exec + wait)"),
            Box::new(move |_| Spec {
                cmd: Command::new(FLOOR),
                stdin: Some(self.hook_input(prompted, "startup")),
            }),
        )];
        if which("jq") {
            cases.push(case(
                "seed hook `sh -c 'jq -r .session_id > FILE'`".into(),
                Box::new(move |_| {
                    let mut cmd = Command::new("sh");
                    self.env(&mut cmd);
                    cmd.arg("-c").arg("jq -r .session_id > \"$1\"").arg("sh").arg(&seed_out);
                    Spec { cmd, stdin: Some(self.hook_input(prompted, "startup")) }
                }),
            ));
        } else {
            eprintln!("clawsess bench: jq not found; the seed hook is left out");
        }
        cases.extend([
            case(
                format!("`hook session-start` ({n} sessions)"),
                Box::new(move |r| self.hook("session-start", self.hook_input(cycled(r), "startup"))),
            ),
            // clawsess's own start-up and exit, with no work: a hook given no input returns at
            // once. What each hook takes beyond it is its work.
            case(
                "clawsess start-up only (`hook stop`, empty input)".into(),
                Box::new(move |_| self.hook("stop", Vec::new())),
            ),
            case(
                "`hook prompt-submit`".into(),
                Box::new(move |_| self.hook("prompt-submit", self.hook_input(prompted, "startup"))),
            ),
            case(
                "`hook stop`".into(),
                Box::new(move |_| self.hook("stop", self.hook_input(prompted, "startup"))),
            ),
            case(
                "`hook session-end`".into(),
                Box::new(move |r| self.hook("session-end", self.hook_input(cycled(r), "startup"))),
            ),
            case(
                format!(
                    "`hook session-end`, {} transcript (branches read)",
                    human_bytes(fs::metadata(big).unwrap().len())
                ),
                Box::new(move |_| {
                    let cwd = self.project(2);
                    self.hook("session-end", hook_json(&self.ids[2], big, &cwd, "startup"))
                }),
            ),
            case(
                format!("`current --key K` ({n} sessions)"),
                plain(vec!["current".into(), "--key".into(), "bench:current".into()]),
            ),
            case(
                format!("`attach ID --key K` ({n} sessions)"),
                plain(vec!["attach".into(), self.ids[3].clone(), "--key".into(), "bench:attach".into()]),
            ),
            case(
                format!("`attach PREFIX --key K` ({n} sessions, {}-char prefix)", prefix.len()),
                plain(vec!["attach".into(), prefix, "--key".into(), "bench:attach".into()]),
            ),
            case(
                "`show ID -n 3`, 2 KB transcript".into(),
                plain(vec!["show".into(), small.to_owned(), "-n".into(), "3".into()]),
            ),
            case(
                format!("`show ID -n 3`, {} transcript", human_bytes(fs::metadata(big).unwrap().len())),
                plain(vec!["show".into(), big_id.clone(), "-n".into(), "3".into()]),
            ),
            case(
                "`show --topic ID`, 2 KB transcript".into(),
                plain(vec!["show".into(), "--topic".into(), small.to_owned()]),
            ),
            case(
                format!("`show --topic ID`, {} transcript", human_bytes(fs::metadata(big).unwrap().len())),
                plain(vec!["show".into(), "--topic".into(), big_id.clone()]),
            ),
            case(
                format!("`mcp` sessions_list ({n} sessions, last_n 200)"),
                self.mcp("sessions_list", json!({"last_n": 200})),
            ),
            case(
                "`mcp` sessions_history, 2 KB transcript".into(),
                self.mcp("sessions_history", json!({"session": small})),
            ),
            case(
                format!(
                    "`mcp` sessions_history, {} transcript",
                    human_bytes(fs::metadata(big).unwrap().len())
                ),
                self.mcp("sessions_history", json!({"session": big_id})),
            ),
            case(
                format!("`mcp` session_status, {} transcript", human_bytes(fs::metadata(big).unwrap().len())),
                self.mcp("session_status", json!({"session": big_id})),
            ),
            case(
                "stand-in `claude -p` called directly".into(),
                Box::new(move |_| {
                    let mut cmd = Command::new(std::env::current_exe().unwrap());
                    self.env(&mut cmd);
                    cmd.env(ROLE_ENV, "claude").args([
                        "-p",
                        "--output-format",
                        "json",
                        "--resume",
                        run_session,
                    ]);
                    Spec { cmd, stdin: Some(b"hello".to_vec()) }
                }),
            ),
            case(
                "`run --key K -- hello` → stand-in".into(),
                Box::new(move |_| Spec { cmd: self.run_cmd(), stdin: None }),
            ),
            case(
                format!(
                    "`run --session S -- hello` → stand-in, {} transcript (branches read)",
                    human_bytes(fs::metadata(big).unwrap().len())
                ),
                Box::new(move |_| {
                    let mut cmd =
                        self.clawsess(["run", "--key", "bench:big", "--session", &self.ids[2], "--claude"]);
                    cmd.arg(std::env::current_exe().unwrap()).args(["--", "hello"]).env(ROLE_ENV, "claude");
                    Spec { cmd, stdin: None }
                }),
            ),
        ]);
        cases
    }

    /// `cases`, each one that runs clawsess followed by its twin running `base` instead (the
    /// same arguments, environment and input), so that both see the same machine.
    fn with_base<'a>(&'a self, cases: Vec<Case<'a>>, base: PathBuf) -> Vec<Case<'a>> {
        let base = std::rc::Rc::new(base);
        let mut out = Vec::new();
        for case in cases {
            let runs_clawsess = (case.make)(0).cmd.get_program() == binary().as_os_str();
            if !runs_clawsess {
                out.push(case);
                continue;
            }
            let make: std::rc::Rc<dyn Fn(usize) -> Spec + 'a> = std::rc::Rc::from(case.make);
            let (mine, theirs) = (make.clone(), make);
            let base = base.clone();
            let name = format!("base: {}", case.name);
            out.push(Case::new(case.name, Box::new(move |r| mine(r))));
            out.push(Case {
                twin: true,
                ..Case::new(
                    name,
                    Box::new(move |r| {
                        let Spec { cmd, stdin } = theirs(r);
                        let mut rebased = Command::new(base.as_path());
                        self.env(&mut rebased);
                        rebased.args(cmd.get_args());
                        for (name, value) in cmd.get_envs() {
                            match value {
                                Some(value) => rebased.env(name, value),
                                None => rebased.env_remove(name),
                            };
                        }
                        if let Some(dir) = cmd.get_current_dir() {
                            rebased.current_dir(dir);
                        }
                        Spec { cmd: rebased, stdin }
                    }),
                )
            });
        }
        out
    }

    /// Times `rounds` runs of each case, interleaved, then forks a few more for peak RSS.
    fn time_round_robin(&self, cases: &mut [Case<'_>], rounds: usize) {
        self.time_round_robin_rss(cases, rounds, RSS_RUNS)
    }

    /// [`time_round_robin`](Self::time_round_robin) with `rss_runs` forked runs.
    fn time_round_robin_rss(&self, cases: &mut [Case<'_>], rounds: usize, rss_runs: usize) {
        eprintln!("clawsess bench: timing {} case(s), {rounds} rounds...", cases.len());
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..cases.len()).collect();
            if round % 2 == 1 {
                for (i, case) in cases.iter().enumerate().skip(1) {
                    if case.twin {
                        order.swap(i - 1, i);
                    }
                }
            }
            for i in order {
                let case = &mut cases[i];
                let sample = measure((case.make)(round), &case.name, Spawn::Spawn);
                case.samples.push(sample);
            }
        }
        for round in rounds..rounds + rss_runs {
            for case in cases.iter_mut() {
                let sample = measure((case.make)(round), &case.name, Spawn::Fork);
                case.rss_kb.push(sample.maxrss_kb);
            }
        }
    }
}

// Small helpers

fn binary() -> PathBuf {
    std::env::var_os(BIN_ENV).map_or_else(|| PathBuf::from(CLAWSESS), PathBuf::from)
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: a zeroed statvfs is a valid out-parameter; path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return u64::MAX;
    }
    st.f_bavail as u64 * st.f_frsize as u64
}
