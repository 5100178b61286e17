//! Reliability: the Promises of SPEC.md under many processes, kills at random instants,
//! stuck locks, failing writes, corrupt state and hostile input.
//!
//! Every test runs the real binary with its own temp HOME, CLAWSESS_HOME and
//! CLAUDE_CONFIG_DIR and a cleared environment; `run` talks to the stand-in `claude`
//! (tests/fixtures/fake_claude.py, the CLI suite's too) that records its argv and stdin and
//! echoes the prompt as its result.
//!
//! One module a section (1 to 7); what they share is here and in `support::testenv`.

#[path = "../support/mod.rs"]
mod support;

mod concurrency;
mod corrupt;
mod crashes;
mod disk;
mod hostile;
mod privacy;
mod waits;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::testenv::*;
