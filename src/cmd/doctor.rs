//! `doctor`: one line per check (`crate::doctor`), or with `--json` one document, exit 1 if
//! any fails; `--probe` runs the probe (`crate::probe`) and prints its checks, or with
//! `--json` its report.

use anyhow::{Context, Result};
use serde_json::Value;

use super::Run;
use crate::cli::Doctor;
use crate::doctor::{Checks, Level};
use crate::exit;
use crate::store::Store;

impl Run for Doctor {
    fn run(&self) -> Result<u8> {
        if self.probe {
            return probe(self.json);
        }
        let mut checks = Checks::default();
        let result = crate::doctor::check(&mut checks, self.claude_dir.as_deref());
        if self.json {
            // One document: a failure is the `{"error"}` object alone.
            result?;
            let mut doc = checks.to_json();
            // `null` when the state dir or the config cannot be read (its check says why).
            let store = Store::open();
            let status = store.and_then(|store| crate::doctor::auto_prune(&store)).ok();
            doc["auto_prune"] = serde_json::to_value(status)?;
            super::print_json(&doc)?;
        } else {
            print(&checks);
            result?;
        }
        Ok(if checks.failed() { exit::FAILURE } else { exit::OK })
    }
}

/// One line a check: `ok  `, `warn` or `FAIL`, what, and what was seen.
fn print(checks: &Checks) {
    for check in &checks.0 {
        let tag = match check.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let _ = crate::outln!("{tag} {}: {}", check.what, crate::sys::printable(&check.detail, false));
    }
}

/// `doctor --probe`: the checks, one line each (or one JSON document), recorded in the store.
fn probe(json: bool) -> Result<u8> {
    let found = crate::config::find_claude(None).and_then(|claude| {
        let exe = std::env::current_exe().context("could not tell this binary's path")?;
        // Its claudes count against the cap: held until the probe is done.
        let store = Store::open()?;
        let deadline = std::time::Instant::now() + crate::probe::SLOT_WAIT;
        let mut said = false;
        let _slots = crate::probe::take_slots(&store, deadline, |waiting| {
            if !said {
                eprintln!(
                    "clawsess: {} claude processes are running ({}), the most clawsess starts at \
                     once ({}={}); the probe waits for {} of them to end (place {} in line)",
                    waiting.running,
                    crate::turn::cap::held_by(&store),
                    crate::config::MAX_CLAUDES_ENV,
                    waiting.cap,
                    crate::probe::CLAUDES_AT_ONCE,
                    waiting.position
                );
                said = true;
            }
        })?;
        crate::probe::probe(&claude, &exe)
    });
    let report = match found {
        Ok(report) => report,
        Err(err) if json => {
            let doc = serde_json::json!({"ok": false, "error": format!("{err:#}")});
            crate::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
            // The same code as without --json: 75 when its claude slots stayed taken.
            return Ok(exit::code_of(&err));
        }
        Err(err) => return Err(err),
    };
    let recorded = Store::open().and_then(|store| crate::probe::record(&store, &report));
    if json {
        let mut doc = serde_json::to_value(&report)?;
        doc["recorded"] = Value::Bool(recorded.is_ok());
        if let Err(err) = &recorded {
            doc["record_error"] = Value::String(format!("{err:#}"));
        }
        crate::outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        print(&crate::doctor::probe_checks(&report, &recorded));
    }
    Ok(if report.ok { exit::OK } else { exit::FAILURE })
}
