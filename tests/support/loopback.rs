//! The skeleton of the stand-in servers: the library's (`clawsess::probe::loopback`), which the
//! Messages API stand-in of `doctor --probe` runs on too.

pub use clawsess::probe::loopback::{Loopback, Served};
