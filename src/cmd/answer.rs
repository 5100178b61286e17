//! `clawsess answer`: answers a permission request, a question or a plan of `run --ask`.

use anyhow::Result;

use super::Run;
use crate::cli::{Answer, Decision};
use crate::exit;
use crate::ident::RequestId;
use crate::live::ask::{self, Kind, Reply};
use crate::store::Store;
use crate::sys::printable;

/// ARG itself, or all of stdin for `-` (its one trailing newline dropped); empty is refused.
fn from_stdin(arg: &str) -> Result<String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| anyhow::anyhow!("could not read the answer from stdin: {e}"))?;
    let text = text.strip_suffix('\n').unwrap_or(&text).to_owned();
    if text.trim().is_empty() {
        anyhow::bail!("the answer on stdin is empty: pipe the text to send (--text -) or give it");
    }
    Ok(text)
}

impl Run for Answer {
    fn run(&self) -> Result<u8> {
        let id = RequestId::parse(&self.request_id)?;
        // `--text -` / `--reason -`: the words come on stdin, never on a command line.
        let text = self.text.as_deref().map(from_stdin).transpose()?;
        let reason = self.reason.as_deref().map(from_stdin).transpose()?;
        let store = Store::open()?;
        if store.request(&id)?.is_none()
            && let Some(host) = crate::remote::ops::host_of_request(&store, &id)?
        {
            let request = crate::remote::Request::Answer {
                request_id: id.to_string(),
                decision: self.decision.map(|d| d == Decision::Allow),
                reason: reason.clone(),
                choices: self.choice.clone(),
                text: text.clone(),
            };
            return crate::remote::ops::call(&store, &host, &request);
        }
        let reply = match self.decision {
            Some(Decision::Allow) => Reply::Allow,
            Some(Decision::Deny) => Reply::Deny { reason },
            None => Reply::Answers { choices: self.choice.clone(), text },
        };
        let req = ask::answer(&store, &id, &reply)?;
        let key = printable(&req.key, false);
        let told = match (Kind::of(&req.tool), &reply) {
            (Kind::Question, Reply::Deny { .. }) => format!("declined the question for {key}"),
            (Kind::Question, _) => format!("answered the question for {key}"),
            (Kind::Plan, Reply::Allow) => format!("approved the plan for {key}"),
            (Kind::Plan, _) => format!("sent the plan back for {key}: Claude keeps planning"),
            (Kind::Permission, Reply::Allow) => format!("allowed {} for {key}", printable(&req.tool, false)),
            (Kind::Permission, _) => format!("denied {} for {key}", printable(&req.tool, false)),
        };
        crate::outln!("{told}")?;
        Ok(exit::OK)
    }
}
