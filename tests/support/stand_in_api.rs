//! The stand-in Messages API: the library's (`clawsess::probe::stand_in`), the one `doctor
//! --probe` serves, so the tests and the probe drive Claude Code against the same server.

pub use clawsess::probe::stand_in::*;
