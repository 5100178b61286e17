//! Exit codes, in one place, and the few errors a caller branches on.

/// Success.
pub const OK: u8 = 0;
/// An error, or `current` finding no session.
pub const FAILURE: u8 = 1;
/// `hook prompt-submit` refuses the prompt (Claude Code shows stderr to the person); also
/// what clap exits with for a command line it cannot parse.
pub const BLOCK: u8 = 2;
/// `run`: the session stayed busy past `--wait` (EX_TEMPFAIL: try again later).
pub const BUSY: u8 = 75;

/// A host could not be reached, or its clawsess cannot serve (EX_UNAVAILABLE): nothing ran.
pub const UNAVAILABLE: u8 = 69;
/// The connection to a host was lost mid-command (EX_IOERR).
pub const LINK_LOST: u8 = 74;

/// A host cannot be reached or served; exits [`UNAVAILABLE`].
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// The connection to a host was lost mid-command; exits [`LINK_LOST`].
#[derive(Debug)]
pub struct LinkLost(pub String);

impl std::fmt::Display for LinkLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LinkLost {}

/// The session is being answered by another surface; `run` exits with [`BUSY`].
#[derive(Debug)]
pub struct Busy(pub String);

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Busy {}

/// `run` was stopped by signal N (SIGTERM, SIGINT, SIGHUP); it exits 128+N, as a shell does.
#[derive(Debug)]
pub struct Stopped(pub i32);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by signal {}; claude was stopped too, and the session is free", self.0)
    }
}

impl std::error::Error for Stopped {}

/// Standard output was closed by its reader (`clawsess list | head -1`): not an error to
/// report, the command just ends (as ripgrep and zoxide do).
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// The exit code for an error that reached `main`.
pub fn code_of(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<Busy>().is_some() {
        BUSY
    } else if let Some(Stopped(sig)) = err.downcast_ref::<Stopped>() {
        128u8.saturating_add(u8::try_from(*sig).unwrap_or(0))
    } else if err.chain().any(|e| e.is::<Unavailable>()) {
        UNAVAILABLE
    } else if err.chain().any(|e| e.is::<LinkLost>()) {
        LINK_LOST
    } else if is_stdout_closed(err) {
        OK
    } else {
        FAILURE
    }
}

/// Whether `err` is (or was caused by) stdout being closed.
pub fn is_stdout_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<StdoutClosed>())
}

/// An error writing to stdout: [`StdoutClosed`] for a closed pipe, else a plain error.
pub fn stdout_error(err: std::io::Error) -> anyhow::Error {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(err).context("could not write to standard output")
    }
}

/// `println!` for command output: a closed stdout becomes [`StdoutClosed`] (ending the
/// command quietly) instead of a panic.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::exit::stdout_error)
    }};
}
