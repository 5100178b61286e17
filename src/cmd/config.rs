//! `clawsess config`: what is in force (the config file, the environment, the defaults) and
//! where each value comes from.

use anyhow::Result;
use serde_json::{Map, json};

use super::{Run, print_json};
use crate::cli::ConfigCmd;
use crate::config::{self, settings::policy_json};
use crate::exit;

impl Run for ConfigCmd {
    fn run(&self) -> Result<u8> {
        let file = config::file()?;
        let (rows, policies) = config::overview(file)?;
        if self.json {
            let mut values = Map::new();
            for (name, _, value, origin) in &rows {
                let mut entry = origin.to_json();
                entry["value"] = value.clone();
                values.insert((*name).to_owned(), entry);
            }
            let doc = json!({
                "file": file.path,
                "file_found": file.found,
                "values": values,
                "reset": policies.iter().map(policy_json).collect::<Vec<_>>(),
            });
            print_json(&doc)?;
            return Ok(exit::OK);
        }
        let found = if file.found { "" } else { " (not found: every value below is env or default)" };
        crate::outln!("config file  {}{found}", crate::sys::tilde(&file.path))?;
        for (name, text, _, origin) in &rows {
            crate::outln!("{name:<12} {:<28} {origin}", crate::sys::printable(text, false))?;
        }
        if policies.is_empty() {
            crate::outln!("{:<12} {:<28} {}", "reset", "off for every key", config::Origin::Default)?;
        }
        for (i, policy) in policies.iter().enumerate() {
            let label = if i == 0 { "reset" } else { "" };
            let rule = format!("{} {}", policy.pattern, policy.mode);
            crate::outln!("{label:<12} {rule:<28} {}", policy.origin)?;
        }
        if !policies.is_empty() && !policies.iter().any(|p| p.pattern == "*") {
            crate::outln!("{:<12} {:<28} {}", "", "other keys: off", config::Origin::Default)?;
        }
        Ok(exit::OK)
    }
}
