//! Exit codes, in one place.

/// Success.
pub const OK: u8 = 0;
/// An error, or `current` finding no session.
pub const FAILURE: u8 = 1;
/// `hook prompt-submit` refuses the prompt (Claude Code shows stderr to the person).
pub const BLOCK: u8 = 2;
/// `run`: the session stayed busy past `--wait` (EX_TEMPFAIL: try again later).
pub const BUSY: u8 = 75;

/// The session is being answered by another surface; `run` exits with [`BUSY`].
#[derive(Debug)]
pub struct Busy(pub String);

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Busy {}

/// The exit code for an error that reached `main`.
pub fn code_of(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<Busy>().is_some() { BUSY } else { FAILURE }
}
