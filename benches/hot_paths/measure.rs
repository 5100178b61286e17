//! Timing one process from spawn to reaped, with its peak RSS, and what a series says.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One timed process: wall time from spawn to reaped, and its peak RSS.
pub struct Sample {
    pub wall: Duration,
    pub maxrss_kb: i64,
}

/// A command to time, with what to feed its stdin (a pipe, as Claude Code gives hooks).
pub struct Spec {
    pub cmd: Command,
    pub stdin: Option<Vec<u8>>,
}

/// Runs `spec` once. stdout goes to /dev/null; anything on stderr or a non-zero exit is a
/// failed benchmark (a hook that complains on stderr has not done its work).
pub fn measure(spec: Spec, what: &str, how: Spawn) -> Sample {
    try_measure(spec, how).unwrap_or_else(|err| panic!("{what}: {err}"))
}

/// How to start a child.
#[derive(Clone, Copy, PartialEq)]
pub enum Spawn {
    /// std's default, posix_spawn (vfork): cheap, the way to time.
    Spawn,
    /// fork + exec, for peak RSS: `ru_maxrss` counts the memory the child had before exec,
    /// which after vfork is all of this process's; after fork only its anonymous pages.
    Fork,
}

pub fn try_measure(spec: Spec, how: Spawn) -> Result<Sample, String> {
    let Spec { mut cmd, stdin } = spec;
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if how == Spawn::Fork {
        use std::os::unix::process::CommandExt;
        // SAFETY: does nothing; a pre_exec hook makes std fork instead of posix_spawn.
        unsafe { cmd.pre_exec(|| Ok(())) };
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("could not start: {e}"))?;
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let _ = pipe.write_all(&bytes); // a child may exit without reading (/bin/true)
    }
    let mut err = Vec::new();
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    let (status, maxrss_kb) = wait4(child.id());
    let wall = start.elapsed();
    if status != 0 || !err.is_empty() {
        return Err(format!("wait status {status:#x}, stderr: {}", String::from_utf8_lossy(&err).trim_end()));
    }
    Ok(Sample { wall, maxrss_kb })
}

/// Reaps `pid` and gives its wait status and peak RSS (KiB). std's `Child::wait` does not
/// return the rusage that `wait4` has.
fn wait4(pid: u32) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our unreaped child; both pointers are valid for the call.
        let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if rc >= 0 {
            return (status, usage.ru_maxrss);
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "wait4: {err}");
    }
}

/// What a series of samples says.
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub max_rss_kb: i64,
}

impl Stats {
    pub fn of(samples: &[Sample]) -> Stats {
        let mut ms: Vec<f64> = samples.iter().map(|s| s.wall.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Stats {
            n: ms.len(),
            median: quantile(&ms, 0.5),
            p10: quantile(&ms, 0.1),
            p90: quantile(&ms, 0.9),
            max_rss_kb: 0,
        }
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}
