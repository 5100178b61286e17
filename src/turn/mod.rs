//! The turn protocol: the library code `run`, the hooks and a Rust bot all call.
//!
//! - [`exclusion`]: who may answer a session now (one turn at a time, whatever surface).
//! - [`queue`]: turns waiting for a session, or for the claude cap, served first come first.
//! - [`cap`]: at most `CLAWSESS_MAX_CLAUDES` claude processes started by clawsess at once.
//! - [`catchup`]: what a live claude process missed of other surfaces' turns.
//! - [`fork`]: a transcript that forked anyway: later resumes follow the newest turn, and the
//!   other branch's turns are told to the model.
//! - [`route`]: which session a key's turn goes to.
//! - [`record`]: what a session's start and a finished turn leave in the store.
//! - [`surface`]: who a claude process is (a terminal, `claude -p`, an SDK bot, a key).
//! - [`sweep`]: what turns left behind that nobody needs any more (`clawsess prune`).
//! - [`hooks`]: each Claude Code hook event as one call of the above.
//!
//! A Rust bot takes a whole turn as `run` does with `crate::run::turn`, which calls these in
//! order: `route`, `exclusion::KeyLock` and `exclusion::RunLock`, `fork::before_resume` (its
//! note goes to `RunLock::set_note`), `record::PendingRunTurn::new` (the turn noted in the run
//! lock: should the bot die mid-turn, the next taker of the session logs it), a claude (a kept
//! one, `crate::warm::take`, or one started for the turn, both driven by
//! `crate::live::LiveTurn`), then `PendingRunTurn::record` (or `failed`).

pub mod cap;
pub mod catchup;
pub mod exclusion;
pub mod fork;
pub mod hooks;
pub mod queue;
pub mod record;
pub mod route;
pub mod surface;
pub mod sweep;
