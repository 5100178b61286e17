//! The turn protocol: the library code `run`, the hooks and a Rust bot all call.
//!
//! One word, one meaning (here and in the rest of the code):
//!
//! - **session**: one Claude Code conversation; its id names its transcript.
//! - **surface**: where a turn comes from: a terminal, `claude -p`, an Agent SDK bot, or a
//!   key's `run`.
//! - **key**: a surface's name for its conversation (`telegram:1`); it has a session of its
//!   own, or is attached to one.
//! - **turn**: one prompt and its answer. A **run turn** is a `run`'s (clawsess starts its
//!   claude); a **process turn** is a claude process's that clawsess did not start, from its
//!   prompt hook to its Stop.
//! - **run lock**: a session's lock, held by a run for its whole turn, and by a process's
//!   prompt hook for a moment; its **holder** (`store::RunHolder`) names the run, its claude
//!   and the fork note. A **key lock** keeps a key's runs in order.
//! - **busy marker** (`store::BusyMarker`, `busy/<id>.json`): a process turn in progress.
//! - **queue**: the turns waiting for a session, oldest first, one **ticket** each.
//! - **behind**: a claude process that has not seen turns other surfaces finished since its
//!   last one.
//! - **note**: text told to the model: the **catch-up note** (the turns a process missed,
//!   [`catchup`]) and the **fork note** (the other branch's turns, [`fork`]). The records
//!   kept under older names are not: the run lock's holder ("noting" it is writing it), the
//!   keeper's `WarmNote`, the `SendNote`.
//! - **warm claude**: one kept up after a run turn by its **keeper** process (`crate::warm`).
//! - **checkpoint correction**: making a forked transcript resume its newest branch ([`fork`]).
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
//! order: `route`, `exclusion::KeyLock` and `exclusion::RunLock`, the session's kept claude if
//! it is fresh (`crate::warm::kept`), `fork::before_resume` (its note goes to
//! `RunLock::set_fork_note`; skipped on a fresh kept claude whose last turn found the
//! transcript unforked, and made before any cold claude instead),
//! `record::PendingRunTurn::new` (the turn noted in the run lock: should the bot die mid-turn,
//! the next taker of the session logs it), a claude (the kept one, one a keeper starts,
//! `crate::warm::take`, or one started for the turn, all driven by `crate::live::LiveTurn`),
//! then `PendingRunTurn::record` (or `failed`).

pub mod cap;
pub mod catchup;
pub mod exclusion;
pub mod fork;
pub mod hooks;
pub mod queue;
pub mod record;
pub mod route;
pub mod surface;
