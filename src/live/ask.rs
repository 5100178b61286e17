//! `run --ask`: a tool call that needs permission becomes a request file that any process of
//! the user answers (`clawsess answer`), so a bot's button handler, or a bot restarted since
//! it showed the buttons, can answer it. Two tools are not permissions but things Claude asks
//! the person ([`Kind`]): AskUserQuestion (questions with options, answered with the chosen
//! labels or a text) and ExitPlanMode (a plan to approve, or to keep planning on).
//!
//! Every change to a request goes through the store lock: the caller's answer and the run's
//! timeout cannot both land, and an answered request cannot be answered again.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ident::{RequestId, SessionId};
use crate::store::{
    COMMAND_LOCK_WAIT, Decision, FORMAT, Locked, PermissionAnswer, PermissionRequest, Store, now_ms,
};
use crate::sys::pid_alive;

/// Puts a tool call to the caller: writes its request file and returns it.
pub fn ask(
    store: &Store,
    session: &SessionId,
    key: &str,
    tool: &str,
    input: &Value,
    timeout: Duration,
) -> Result<PermissionRequest> {
    let now = now_ms();
    let req = PermissionRequest {
        v: FORMAT,
        id: RequestId::new_random(),
        session: session.clone(),
        key: key.to_owned(),
        run_pid: std::process::id(),
        run_pid_start: crate::claude::process::start_time(std::process::id()),
        tool: tool.to_owned(),
        input: input.clone(),
        asked_at: now,
        timeout_at: now.saturating_add(timeout.as_millis() as u64),
        answer: None,
    };
    store.lock(COMMAND_LOCK_WAIT)?.put_request(&req)?;
    Ok(req)
}

/// What the run waiting on `id` should do now: the answer, once there is one. A request whose
/// file is gone (swept, or removed by hand) counts as denied.
pub fn check(store: &Store, id: &RequestId) -> Result<Option<PermissionAnswer>> {
    match store.request(id)? {
        Some(req) => Ok(req.answer),
        None => Ok(Some(PermissionAnswer {
            decision: Decision::Deny,
            reason: Some("the permission request was withdrawn".into()),
            updated_input: None,
            at: now_ms(),
        })),
    }
}

/// The run gives up waiting: the request is denied as timed out, unless an answer landed
/// first, which then stands. Returns the answer that stands.
pub fn time_out(store: &Store, id: &RequestId, reason: &str) -> Result<PermissionAnswer> {
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    let Some(mut req) = tx.request(id)? else {
        return Ok(PermissionAnswer {
            decision: Decision::Timeout,
            reason: Some(reason.into()),
            updated_input: None,
            at: now_ms(),
        });
    };
    if let Some(answer) = req.answer {
        return Ok(answer);
    }
    let answer = PermissionAnswer {
        decision: Decision::Timeout,
        reason: Some(reason.into()),
        updated_input: None,
        at: now_ms(),
    };
    req.answer = Some(answer.clone());
    tx.put_request(&req)?;
    Ok(answer)
}

/// What a request asks of the person, by the tool that asks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// May this tool call run?
    Permission,
    /// AskUserQuestion: questions with options.
    Question,
    /// ExitPlanMode: may Claude leave plan mode and carry out this plan?
    Plan,
}

impl Kind {
    pub fn of(tool: &str) -> Kind {
        match tool {
            "AskUserQuestion" => Kind::Question,
            "ExitPlanMode" => Kind::Plan,
            _ => Kind::Permission,
        }
    }
}

/// One question of an AskUserQuestion call, as the `question` event shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Question {
    pub question: String,
    /// The short label Claude gives it (a chip in Claude Code's UI); may be empty.
    pub header: String,
    pub options: Vec<Choice>,
    /// More than one option may be chosen.
    pub multi: bool,
}

/// One option of a [`Question`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub label: String,
    pub description: String,
}

/// The questions of an AskUserQuestion input (`questions[].question/header/options/multiSelect`,
/// Claude Code 2.1.x); entries without a question text are left out.
pub fn questions(input: &Value) -> Vec<Question> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let list = input.get("questions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    list.iter()
        .filter(|q| !text(q, "question").is_empty())
        .map(|q| Question {
            question: text(q, "question"),
            header: text(q, "header"),
            options: q
                .get("options")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|o| match o {
                    Value::String(label) => Some(Choice { label: label.clone(), description: String::new() }),
                    _ => Some(Choice { label: text(o, "label"), description: text(o, "description") })
                        .filter(|c| !c.label.is_empty()),
                })
                .collect(),
            multi: q.get("multiSelect").and_then(Value::as_bool).unwrap_or(false),
        })
        .collect()
}

/// Longest plan read from a plan file.
const PLAN_MAX: u64 = 256 * 1024;

/// The plan of an ExitPlanMode call: the `plan` of the input claude asks about, else of the
/// input the model called the tool with, else the plan file the model wrote this turn. Claude
/// Code 2.1.328 asks with `{}`: in plan mode its system prompt has the model write the plan
/// to `<config dir>/plans/<name>.md` and call ExitPlanMode without one.
pub fn plan_text(input: &Value, called: Option<&Value>, file: Option<&std::path::Path>) -> String {
    use std::io::Read;
    let plan = |v: &Value| v.get("plan").and_then(Value::as_str).map(str::to_owned);
    let from_file = || {
        let mut text = String::new();
        std::fs::File::open(file?).ok()?.take(PLAN_MAX).read_to_string(&mut text).ok()?;
        Some(text).filter(|t| !t.trim().is_empty())
    };
    plan(input)
        .or_else(|| called.and_then(plan))
        .or_else(from_file)
        .unwrap_or_else(|| "(Claude gave no plan text)".into())
}

/// The plan file a Write or Edit call of the model writes, if it writes one: a `.md` file in
/// a folder named `plans` (Claude Code's `<config dir>/plans/`).
pub fn plan_file(tool: &str, input: &Value) -> Option<std::path::PathBuf> {
    if !matches!(tool, "Write" | "Edit" | "MultiEdit") {
        return None;
    }
    let path = std::path::PathBuf::from(input.get("file_path")?.as_str()?);
    let in_plans = path.parent()?.file_name()? == "plans";
    (in_plans && path.extension()? == "md").then_some(path)
}

/// How `clawsess answer` answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `allow`: the tool call runs; a plan is approved.
    Allow,
    /// `deny`: the tool call does not run; a plan is not approved (keep planning); a question
    /// is declined. `reason` reaches the model.
    Deny { reason: Option<String> },
    /// `--choice LABEL...` and/or `--text TEXT`: a question's answers; a plan's `--text` is
    /// what to change (Claude keeps planning).
    Answers { choices: Vec<String>, text: Option<String> },
}

/// The AskUserQuestion input with the person's answers put in (`answers`: question text ->
/// the chosen labels joined by ", ", or the text), as the Agent SDK's `canUseTool` returns
/// it. Each label goes to the first question not yet answered that offers it (to any that
/// offers it, for a multi-select question); the text answers every question left.
pub fn answered_input(input: &Value, choices: &[String], text: Option<&str>) -> Result<Value> {
    let questions = questions(input);
    if questions.is_empty() {
        bail!("the question request has no questions to answer; answer it with allow or deny");
    }
    let mut picked: Vec<Vec<String>> = vec![Vec::new(); questions.len()];
    for wanted in choices {
        fn offers<'q>(q: &'q Question, wanted: &str) -> Option<&'q Choice> {
            q.options.iter().find(|c| c.label.eq_ignore_ascii_case(wanted.trim()))
        }
        let slot = questions
            .iter()
            .enumerate()
            .find(|(i, q)| offers(q, wanted).is_some() && (picked[*i].is_empty() || q.multi))
            .or_else(|| questions.iter().enumerate().find(|(_, q)| offers(q, wanted).is_some()));
        let Some((i, q)) = slot else {
            let labels: Vec<String> =
                questions.iter().flat_map(|q| q.options.iter().map(|c| format!("{:?}", c.label))).collect();
            bail!("no question offers {wanted:?}; the options are {}", labels.join(", "));
        };
        let label = offers(q, wanted).map(|c| c.label.clone()).unwrap_or_default();
        if !picked[i].is_empty() && !q.multi {
            bail!("{:?} takes one choice, and got {:?} and {label:?}", q.question, picked[i][0]);
        }
        if !picked[i].contains(&label) {
            picked[i].push(label);
        }
    }
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    let mut answers = Map::new();
    let mut text_used = false;
    for (q, labels) in questions.iter().zip(&picked) {
        let answer = if !labels.is_empty() {
            labels.join(", ")
        } else if let Some(text) = text {
            text_used = true;
            text.to_owned()
        } else {
            let labels: Vec<String> = q.options.iter().map(|c| format!("{:?}", c.label)).collect();
            bail!(
                "{:?} has no answer: add --choice with one of {}, or --text",
                q.question,
                labels.join(", ")
            );
        };
        answers.insert(q.question.clone(), Value::String(answer));
    }
    if text.is_some() && !text_used {
        bail!("every question has a --choice already: nothing is left for --text to answer");
    }
    let mut updated = input.clone();
    if let Value::Object(fields) = &mut updated {
        fields.insert("answers".into(), Value::Object(answers));
    }
    Ok(updated)
}

/// `clawsess answer`: answers request `id` once. Unknown, already answered or timed out, or
/// its run gone: an error saying so. A reply that does not fit the request (a choice for a
/// permission, `allow` for a question, a label no question offers) is refused, the request
/// still waiting.
pub fn answer(store: &Store, id: &RequestId, reply: &Reply) -> Result<PermissionRequest> {
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    let Some(mut req) = tx.request(id)? else {
        bail!("no permission request or question {id} is waiting: its turn is over, or the id is wrong");
    };
    if let Some(done) = &req.answer {
        let how = match done.decision {
            Decision::Allow => "allowed",
            Decision::Deny => "denied",
            Decision::Timeout => "denied: nobody answered in time",
        };
        bail!("request {id} was already answered ({how})");
    }
    if !run_alive(&req) {
        tx.remove_request(id)?;
        bail!("the run that asked request {id} is gone; nothing is waiting for it");
    }
    let kind = Kind::of(&req.tool);
    let (decision, reason, updated_input) = match (kind, reply) {
        (Kind::Question, Reply::Allow) => {
            bail!("request {id} is a question: answer it with --choice LABEL or --text TEXT (or deny)")
        }
        (Kind::Question, Reply::Answers { choices, text }) => {
            (Decision::Allow, None, Some(answered_input(&req.input, choices, text.as_deref())?))
        }
        (Kind::Plan, Reply::Answers { choices, .. }) if !choices.is_empty() => {
            bail!("request {id} is a plan: approve it with allow, or keep planning with deny or --text TEXT")
        }
        (Kind::Plan, Reply::Answers { text, .. }) => (Decision::Deny, text.clone(), None),
        (Kind::Permission, Reply::Answers { .. }) => {
            bail!("request {id} is a permission request: answer it with allow or deny")
        }
        (_, Reply::Allow) => (Decision::Allow, None, None),
        (_, Reply::Deny { reason }) => (Decision::Deny, reason.clone(), None),
    };
    req.answer = Some(PermissionAnswer { decision, reason, updated_input, at: now_ms() });
    tx.put_request(&req)?;
    Ok(req)
}

/// The run that asked `req` still lives: its pid is alive and, where the request has it, was
/// started when that run was (a pid reused by another process is no run waiting).
fn run_alive(req: &PermissionRequest) -> bool {
    pid_alive(req.run_pid)
        && req
            .run_pid_start
            .is_none_or(|start| crate::claude::process::start_time(req.run_pid) == Some(start))
}

/// Removes the requests of a turn that is over (a late answer then says so).
pub fn forget(store: &Store, ids: &[RequestId]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let tx = store.lock(COMMAND_LOCK_WAIT)?;
    for id in ids {
        tx.remove_request(id)?;
    }
    Ok(())
}

/// Removes the requests whose run has died (SIGKILL leaves them); returns how many.
pub fn sweep(store: &Store) -> Result<usize> {
    if store.requests()?.iter().all(run_alive) {
        return Ok(0); // the common case, without the store lock
    }
    sweep_locked(&store.lock(COMMAND_LOCK_WAIT)?)
}

/// [`sweep`] with the store lock already held.
pub fn sweep_locked(tx: &Locked<'_>) -> Result<usize> {
    let mut swept = 0;
    for req in tx.requests()?.into_iter().filter(|r| !run_alive(r)) {
        if tx.remove_request(&req.id)? {
            swept += 1;
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session() -> SessionId {
        SessionId::parse("aaaa1111-0000-4000-8000-000000000000").unwrap()
    }

    #[test]
    fn a_request_is_answered_once_and_a_timeout_does_not_override_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let req = ask(&store, &session(), "k", "Bash", &json!({"command": "tee x"}), Duration::from_secs(60))
            .unwrap();
        assert_eq!(check(&store, &req.id).unwrap(), None);
        answer(&store, &req.id, &Reply::Allow).unwrap();
        let err =
            answer(&store, &req.id, &Reply::Deny { reason: Some("no".into()) }).unwrap_err().to_string();
        assert!(err.contains("already answered (allowed)"), "{err}");
        assert_eq!(time_out(&store, &req.id, "late").unwrap().decision, Decision::Allow);
        assert_eq!(check(&store, &req.id).unwrap().unwrap().decision, Decision::Allow);

        let second = ask(&store, &session(), "k", "Write", &json!({}), Duration::ZERO).unwrap();
        assert_eq!(time_out(&store, &second.id, "no answer").unwrap().decision, Decision::Timeout);
        assert!(answer(&store, &second.id, &Reply::Allow).unwrap_err().to_string().contains("in time"));
        forget(&store, &[req.id.clone(), second.id.clone()]).unwrap();
        assert!(
            answer(&store, &req.id, &Reply::Allow).unwrap_err().to_string().contains("no permission request")
        );
        assert_eq!(check(&store, &req.id).unwrap().unwrap().decision, Decision::Deny);
    }

    #[test]
    fn requests_of_a_dead_run_are_swept_and_cannot_be_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let mut req = ask(&store, &session(), "k", "Bash", &json!({}), Duration::from_secs(60)).unwrap();
        let live = ask(&store, &session(), "k", "Bash", &json!({}), Duration::from_secs(60)).unwrap();
        req.run_pid = u32::MAX; // no such process
        store.lock(COMMAND_LOCK_WAIT).unwrap().put_request(&req).unwrap();
        assert!(answer(&store, &req.id, &Reply::Allow).unwrap_err().to_string().contains("is gone"));
        store.lock(COMMAND_LOCK_WAIT).unwrap().put_request(&req).unwrap();
        assert_eq!(sweep(&store).unwrap(), 1);
        assert!(store.request(&req.id).unwrap().is_none());
        assert!(store.request(&live.id).unwrap().is_some(), "a live run's request stays");
        // The run's pid now names another live process (reused): no run is waiting.
        let mut reused = ask(&store, &session(), "k", "Bash", &json!({}), Duration::from_secs(60)).unwrap();
        reused.run_pid_start = reused.run_pid_start.map(|s| s + 1);
        store.lock(COMMAND_LOCK_WAIT).unwrap().put_request(&reused).unwrap();
        assert!(answer(&store, &reused.id, &Reply::Allow).unwrap_err().to_string().contains("is gone"));
        assert!(store.request(&live.id).unwrap().is_some());
    }

    fn two_questions() -> Value {
        json!({"questions": [
            {"question": "Which color?", "header": "Color", "multiSelect": false,
             "options": [{"label": "Red", "description": "warm"}, {"label": "Blue", "description": "calm"}]},
            {"question": "Which sizes?", "header": "Size", "multiSelect": true,
             "options": [{"label": "S", "description": ""}, {"label": "M", "description": ""}, {"label": "Red", "description": "a size called red"}]}
        ]})
    }

    #[test]
    fn choices_go_to_the_questions_that_offer_them_and_text_answers_the_rest() {
        let input = two_questions();
        let q = questions(&input);
        assert_eq!((q.len(), q[0].multi, q[1].multi), (2, false, true));
        assert_eq!(q[0].options[1], Choice { label: "Blue".into(), description: "calm".into() });
        let done = answered_input(&input, &["blue".into(), "S".into(), "m".into()], None).unwrap();
        assert_eq!(done["answers"], json!({"Which color?": "Blue", "Which sizes?": "S, M"}));
        assert_eq!(done["questions"], input["questions"], "the questions stay as claude gave them");
        // "Red" is offered by both: the first goes to the first question, the second to the next.
        let both = answered_input(&input, &["Red".into(), "Red".into()], None).unwrap();
        assert_eq!(both["answers"], json!({"Which color?": "Red", "Which sizes?": "Red"}));
        let text = answered_input(&input, &["Blue".into()], Some("whatever fits")).unwrap();
        assert_eq!(text["answers"]["Which sizes?"], "whatever fits");
        let err = |c: &[&str], t: Option<&str>| {
            let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            answered_input(&input, &c, t).unwrap_err().to_string()
        };
        assert!(err(&["Purple"], None).contains("no question offers \"Purple\""));
        assert!(err(&["Blue"], None).contains("\"Which sizes?\" has no answer"));
        assert!(err(&["Blue", "S"], Some("x")).contains("nothing is left for --text"));
        let one = json!({"questions": [{"question": "Q?", "options": [{"label": "A"}, {"label": "B"}]}]});
        let two = ["A".to_string(), "B".to_string()];
        assert!(answered_input(&one, &two, None).unwrap_err().to_string().contains("takes one choice"));
        assert!(answered_input(&json!({}), &two, None).is_err());
    }

    #[test]
    fn a_question_takes_answers_a_plan_allow_or_text_and_a_permission_allow_or_deny() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let t = Duration::from_secs(60);
        let q = ask(&store, &session(), "k", "AskUserQuestion", &two_questions(), t).unwrap();
        assert!(answer(&store, &q.id, &Reply::Allow).unwrap_err().to_string().contains("--choice"));
        let answers = Reply::Answers { choices: vec!["Red".into(), "M".into()], text: None };
        let done = answer(&store, &q.id, &answers).unwrap().answer.unwrap();
        assert_eq!(done.decision, Decision::Allow);
        assert_eq!(done.updated_input.unwrap()["answers"]["Which sizes?"], "M");

        let p = ask(&store, &session(), "k", "ExitPlanMode", &json!({}), t).unwrap();
        let pick = Reply::Answers { choices: vec!["Yes".into()], text: None };
        assert!(answer(&store, &p.id, &pick).unwrap_err().to_string().contains("is a plan"));
        let back = Reply::Answers { choices: vec![], text: Some("smaller".into()) };
        let done = answer(&store, &p.id, &back).unwrap().answer.unwrap();
        assert_eq!((done.decision, done.reason.as_deref()), (Decision::Deny, Some("smaller")));

        let b = ask(&store, &session(), "k", "Bash", &json!({}), t).unwrap();
        assert!(answer(&store, &b.id, &back).unwrap_err().to_string().contains("allow or deny"));
    }

    #[test]
    fn a_plan_comes_from_the_input_the_call_or_the_plan_file() {
        let dir = tempfile::tempdir().unwrap();
        let plans = dir.path().join("plans");
        std::fs::create_dir(&plans).unwrap();
        let file = plans.join("quiet-river.md");
        std::fs::write(&file, "# Plan\n1. do it\n").unwrap();
        let write = json!({"file_path": file, "content": "x"});
        assert_eq!(plan_file("Write", &write), Some(file.clone()));
        assert_eq!(plan_file("Read", &write), None);
        assert_eq!(plan_file("Write", &json!({"file_path": dir.path().join("x.md")})), None);
        assert_eq!(plan_text(&json!({"plan": "A"}), Some(&json!({"plan": "B"})), Some(&file)), "A");
        assert_eq!(plan_text(&json!({}), Some(&json!({"plan": "B"})), Some(&file)), "B");
        assert_eq!(plan_text(&json!({}), Some(&json!({})), Some(&file)), "# Plan\n1. do it\n");
        assert!(plan_text(&json!({}), None, None).contains("no plan"));
    }
}
