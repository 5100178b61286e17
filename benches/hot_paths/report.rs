//! The markdown report: the table, the throughput, the targets and the machine.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::{BASE_ENV, BIN_ENV, Plan, RSS_RUNS, Results, binary};

struct Target {
    what: String,
    measured: String,
    holds: bool,
}

pub fn report(plan: &Plan, results: &Results, root: &Path) -> String {
    let floor = results.rows[0].1.median;
    let mut out = String::new();
    let w = &mut out;
    use std::fmt::Write as _;
    let size = fs::metadata(binary()).map(|m| m.len()).unwrap_or(0);
    let _ = writeln!(w, "## clawsess hot paths\n");
    let _ = writeln!(w, "{}\n", machine(root));
    let _ = writeln!(
        w,
        "{}: {} ({size} bytes). Sessions recorded: {} (`list --json` names {}). \
         Times are wall clock from spawn to reaped, in ms.\n",
        if std::env::var_os(BIN_ENV).is_some() {
            format!("Binary from ${BIN_ENV}")
        } else {
            "Release binary".to_owned()
        },
        human_bytes(size),
        plan.sessions,
        results.sessions_listed
    );
    if let Some(base) = std::env::var_os(BASE_ENV).filter(|b| !b.is_empty()) {
        let size = fs::metadata(&base).map(|m| m.len()).unwrap_or(0);
        let _ = writeln!(
            w,
            "Rows named `base:` ran the binary from ${BASE_ENV} ({}), each right after the row \
             above it in every round, on the same state.\n",
            human_bytes(size)
        );
    }
    let _ = writeln!(w, "| case | n | median | p10 | p90 | × floor | peak RSS |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|");
    for (name, s) in &results.rows {
        let _ = writeln!(
            w,
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.1}× | {:.1} MiB |",
            s.n,
            s.median,
            s.p10,
            s.p90,
            s.median / floor,
            s.max_rss_kb as f64 / 1024.0
        );
    }
    let t = &results.throughput;
    let _ = writeln!(w, "\n| throughput | value |\n|---|---:|");
    let _ = writeln!(
        w,
        "| `hook session-start`, {} writers in parallel | {} hooks in {:.2} s |",
        t.writers,
        t.hooks,
        t.wall.as_secs_f64()
    );
    let _ = writeln!(w, "| records/s | {:.0} |", t.hooks as f64 / t.wall.as_secs_f64());
    let _ = writeln!(
        w,
        "| lost (recorded ids missing from `list --json`, which had {} entries) | {} |",
        t.listed, t.lost
    );
    let _ = writeln!(w, "| hooks that failed (non-zero exit or stderr) | {} |", t.failed);
    let _ = writeln!(
        w,
        "| latency under contention: median / p90 / max | {:.2} / {:.2} / {:.2} ms |",
        t.latency.median, t.latency.p90, t.latency_max_ms
    );
    let _ = writeln!(w, "\n| target | measured | holds |\n|---|---|:---:|");
    for target in targets(results, floor) {
        let _ = writeln!(
            w,
            "| {} | {} | {} |",
            target.what,
            target.measured,
            if target.holds { "yes" } else { "**NO**" }
        );
    }
    let _ = writeln!(
        w,
        "\n`run` session: a stand-in claude (this benchmark's own executable, compiled Rust) \
         that reads the prompt, appends the turn to the transcript and prints the JSON \
         result; overhead = median(run) − median(stand-in directly). Peak RSS: the largest \
         `ru_maxrss` of {RSS_RUNS} forked runs (it includes what the child had before exec; \
         the floor row shows that part)."
    );
    out
}

fn targets(results: &Results, floor: f64) -> Vec<Target> {
    // Cases left out by --only leave their targets out.
    let stat = |prefix: &str| results.rows.iter().find(|(n, _)| n.starts_with(prefix)).map(|(_, s)| s);
    let last = |prefix: &str| results.rows.iter().rfind(|(n, _)| n.starts_with(prefix)).map(|(_, s)| s);
    let mut out = Vec::new();
    let mut hook_rss = None;
    for name in [
        "`hook session-start`",
        "`hook prompt-submit`",
        "`hook stop`",
        "`hook session-end`",
        "`current --key K`",
    ] {
        let Some(s) = stat(name) else { continue };
        if name.starts_with("`hook") {
            hook_rss = Some(hook_rss.unwrap_or(0).max(s.max_rss_kb));
        }
        out.push(Target {
            what: format!("{name} median < 2 ms and ≤ 2× floor"),
            measured: format!("{:.2} ms, {:.1}×", s.median, s.median / floor),
            holds: s.median < 2.0 && s.median <= 2.0 * floor,
        });
    }
    if let Some(list) = stat("`list --json`") {
        out.push(Target {
            what: "`list --json` median < 250 ms".into(),
            measured: format!("{:.1} ms", list.median),
            holds: list.median < 250.0,
        });
    }
    for (prefix, what) in [("`show ID -n 3`", "`show`"), ("`show --topic ID`", "`show --topic`")] {
        let (Some(small), Some(big)) = (stat(&format!("{prefix}, 2 KB")), last(prefix)) else { continue };
        out.push(Target {
            what: format!("{what} on the big transcript < 20 ms and ≤ 3× the 2 KB case"),
            measured: format!(
                "{:.2} ms, {:.2}× ({:.2} ms)",
                big.median,
                big.median / small.median,
                small.median
            ),
            holds: big.median < 20.0 && big.median <= 3.0 * small.median,
        });
    }
    if let (Some(run), Some(direct)) = (stat("`run --key K"), stat("stand-in")) {
        let overhead = run.median - direct.median;
        out.push(Target {
            what: "`run` overhead < 3 ms".into(),
            measured: format!("{overhead:.2} ms ({:.2} − {:.2})", run.median, direct.median),
            holds: overhead < 3.0,
        });
    }
    if let Some(rss) = hook_rss {
        out.push(Target {
            what: "hook peak RSS < 8 MB".into(),
            measured: format!("{:.1} MiB", rss as f64 / 1024.0),
            holds: (rss as f64) * 1024.0 < 8e6,
        });
    }
    out.push(Target {
        what: "parallel hooks lose nothing".into(),
        measured: format!(
            "{} lost, {} failed, of {}",
            results.throughput.lost, results.throughput.failed, results.throughput.hooks
        ),
        holds: results.throughput.lost == 0 && results.throughput.failed == 0,
    });
    out
}

/// One line about where this ran.
fn machine(root: &Path) -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let rustc = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "rustc ?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "Machine: {cores} CPUs ({cpu}), Linux {kernel}, {rustc}; state dir on {}.{}",
        fs_type(root),
        match std::env::var_os("LD_PRELOAD").filter(|p| !p.is_empty()) {
            Some(p) => format!(
                " **LD_PRELOAD={} was set**",
                Path::new(&p).file_name().unwrap_or_default().to_string_lossy()
            ),
            None => String::new(),
        }
    )
}

pub fn human_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.0} KiB", n as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", n as f64 / 1_073_741_824.0),
    }
}

/// The file system type `dir` lives on (ext4, tmpfs, ...), from /proc/self/mounts.
pub fn fs_type(dir: &Path) -> String {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_, mount, kind) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(mount).then(|| (mount.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "an unknown file system".into(), |(_, kind)| kind)
}
