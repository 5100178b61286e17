//! The branches of a transcript, read from its end.
//!
//! Claude Code chains a session's messages by `parentUuid`. Two processes that answer from the
//! same message fork the chain, and a resume follows one branch: the one its newest
//! `last-prompt` checkpoint names; a checkpoint on an ancestor of newer messages is followed
//! down to them (both measured on 2.1.328). An interactive Claude Code writes that checkpoint
//! when it exits; a terminal that wrote anything onto a stale leaf (a refusal notice is
//! enough) and exits there makes every later resume drop the turns other surfaces added.
//!
//! [`read`] finds the branch with the newest turn, whether the newest checkpoint is on it, and
//! the turns on side branches (off the newest one); [`point_resume_at`] appends one checkpoint
//! naming the newest branch's leaf, in the shape Claude Code writes itself. That line is the
//! only thing clawsess ever writes into a transcript.
//!
//! The newest turn is not simply the newest message in the file. Claude Code also writes
//! messages for a process that took no turn: a terminal refused as behind writes a synthetic
//! assistant line (`No response requested.`, model `<synthetic>`) on its stale leaf, and
//! `/compact` or `!cmd` in a terminal that is behind write (and even answer) on it, with no
//! hook asked (all measured on 2.1.328). So the turns the turn log holds ([`Logged`], found by
//! their prompt and reply) anchor it: the newest turn is the newest message that descends from
//! the newest logged turn found (a process that wrote below it had seen it), and a message off
//! that turn's line never outranks it. Only a transcript with no logged turn in reach (a session
//! clawsess never saw a turn of) falls back to the newest message in file order.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{Message, RevLines, Role, WireMessage, message_text, open_regular};

/// How much of a transcript's end is always read (side branches older than this are not
/// looked for).
pub const WINDOW: u64 = 2 * 1024 * 1024;
/// How far back a read goes to find the message the newest checkpoint names.
pub const WINDOW_MAX: u64 = 64 * 1024 * 1024;

/// What the end of a transcript says about its branches.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Branches {
    /// The last message of the branch holding the newest turn.
    pub newest_leaf: Option<String>,
    /// The newest prompt on that branch (Claude Code's checkpoints carry it).
    pub last_prompt: Option<String>,
    /// The newest checkpoint names a message on another branch: a resume would follow that
    /// branch and drop the newest turns.
    pub stale_checkpoint: bool,
    /// User prompts and assistant texts on branches off the one a resume follows (after a
    /// [`point_resume_at`] where the checkpoint is stale), oldest first.
    pub side: Vec<Message>,
    /// The uuid of the newest message in `side`.
    pub side_newest: Option<String>,
    /// A message on the followed branch, newer than every message in `side`, holds the mark
    /// [`read`] was given: the side branch was told there already.
    pub told: bool,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: Option<String>,
    uuid: Option<String>,
    #[serde(rename = "parentUuid")]
    parent: Option<String>,
    /// A compact boundary starts a new chain (`parentUuid: null`) and names the old leaf here.
    #[serde(rename = "logicalParentUuid")]
    logical_parent: Option<String>,
    #[serde(rename = "isSidechain", default)]
    sidechain: bool,
    #[serde(rename = "isMeta", default)]
    meta: bool,
    #[serde(rename = "isApiErrorMessage", default)]
    api_error: bool,
    /// `last-prompt`.
    #[serde(rename = "leafUuid")]
    leaf: Option<String>,
    #[serde(default)]
    rewound: Option<bool>,
    /// A checkpoint a person's choice wrote (`/rewind`: measured on 2.1.328, the prompt after
    /// it is followed by `{"leafUuid": "00000000-…", "explicit": true}`).
    #[serde(default)]
    explicit: Option<bool>,
    timestamp: Option<String>,
    message: Option<EntryMessage>,
}

/// Only the model: `<synthetic>` marks a line Claude Code made up without asking a model.
#[derive(Deserialize)]
struct EntryMessage {
    model: Option<String>,
}

/// A turn the session's turn log holds (see `turn::catchup`), as logged: a turn that went
/// through the turn protocol. [`read_anchored`] takes them newest first.
#[derive(Debug, Clone, Copy)]
pub struct Logged<'a> {
    pub prompt: &'a str,
    pub reply: &'a str,
}

/// How many of the newest logged turns are looked for.
const LOGGED_LOOKED_FOR: usize = 8;

#[derive(Deserialize)]
struct WithMessage {
    message: Option<WireMessage>,
}

struct Node {
    uuid: String,
    parent: Option<String>,
    /// A user or assistant message (not meta, not an API error): part of a turn.
    turn: bool,
    /// Its text, for the side-branch note.
    text: Option<Message>,
    /// Position in the file (lines, from the start of what was read).
    seq: usize,
    /// The line holds the mark looked for.
    marked: bool,
}

struct Checkpoint {
    leaf: Option<String>,
    /// Written by a rewind or another deliberate choice of branch (`rewound` or `explicit`).
    chosen: bool,
}

/// How much of a transcript's end [`read`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    /// Always read this much (side branches are looked for in it).
    pub window: u64,
    /// A transcript with no checkpoint in this much of its end has none that matters.
    pub checkpoint_within: u64,
    /// Read on up to this much to find the message the newest checkpoint names.
    pub search: u64,
}

impl Reach {
    /// Before a resume: side branches and the newest checkpoint in the last [`WINDOW`] (every
    /// turn of 2.1.328 writes one; 2.0.77 writes none, and a transcript without one costs this
    /// much, not its size), the message it names anywhere in [`WINDOW_MAX`].
    pub const RESUME: Reach = Reach { window: WINDOW, checkpoint_within: WINDOW, search: WINDOW_MAX };
    /// At a process's exit, right after Claude Code wrote its exit checkpoint: that checkpoint
    /// is at the end, and the newest logged turn a little before it (its text is read to find
    /// it: see [`read_anchored`]).
    pub const EXIT: Reach = Reach { window: 256 * 1024, checkpoint_within: 256 * 1024, search: WINDOW_MAX };
}

/// Reads the end of the transcript at `path` (see [`Reach`]); `mark`: text whose presence on
/// the followed branch after the side branches says they were told (see [`Branches::told`]).
/// With no logged turns to anchor the newest one: see [`read_anchored`].
pub fn read(path: &Path, reach: Reach, mark: &str) -> Result<Branches> {
    read_anchored(path, reach, mark, &[])
}

/// [`read`], the newest turn anchored on the turns the turn log holds (`logged`, newest first;
/// see the module doc).
///
/// When the newest checkpoint is stale and the two branches meet only before what was read
/// (a long branch since the fork: big tool outputs), the read goes on, up to `reach.search`,
/// to the message where they meet, so that the turns on the checkpoint's branch reach the
/// fork note. Past `search` they are still noted (the fork point unread): nothing is dropped
/// without a note.
pub fn read_anchored(path: &Path, reach: Reach, mark: &str, logged: &[Logged<'_>]) -> Result<Branches> {
    let (nodes, checkpoint, rewinds) = collect(path, reach, mark, None)?;
    let first = analyse(&nodes, checkpoint.as_ref(), &rewinds, logged);
    let Some(meet) = first.1 else { return Ok(first.0) };
    let (nodes, checkpoint, rewinds) = collect(path, reach, mark, Some(meet))?;
    Ok(analyse(&nodes, checkpoint.as_ref(), &rewinds, logged).0)
}

/// The parents of the oldest messages read on two branches that meet before what was read.
type Meet = (Option<String>, Option<String>);

/// The messages and the newest checkpoint of the transcript's end, in file order. With
/// `meet` (the parents of the oldest messages read on two branches), reading goes on until
/// the two lines of ancestry meet, or `reach.search` is read.
fn collect(
    path: &Path,
    reach: Reach,
    mark: &str,
    meet: Option<Meet>,
) -> Result<(Vec<Node>, Option<Checkpoint>, Vec<usize>)> {
    let Reach { window, checkpoint_within, search } = reach;
    let read_err = || format!("could not read transcript {}", path.display());
    let mut lines = RevLines::open(path, search.max(window).max(checkpoint_within)).with_context(read_err)?;
    // Last first, as read.
    let mut nodes: Vec<Node> = Vec::new();
    let mut checkpoint: Option<Checkpoint> = None;
    // Positions (counted from the end) of checkpoints written by a rewind.
    let mut rewinds: Vec<usize> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut saw_turn = false;
    // The next ancestor looked for on each of the two branches (read last to first, a
    // message's parent comes later): they meet at the message both look for.
    let (mut a, mut b) = meet.clone().unwrap_or_default();
    let mut met = false;
    let mut read = 0u64;
    let mut n = 0usize;
    while let Some(line) = lines.next_line().with_context(read_err)? {
        read += line.len() as u64 + 1;
        n += 1;
        if let Ok(entry) = serde_json::from_slice::<Entry>(&line) {
            // Past the window only the chain matters, not the text.
            let text = read <= window;
            if entry.kind.as_deref() == Some("last-prompt") {
                let chosen = entry.rewound == Some(true) || entry.explicit == Some(true);
                if chosen {
                    rewinds.push(n);
                }
                if checkpoint.is_none() {
                    checkpoint = Some(Checkpoint { leaf: entry.leaf, chosen });
                }
            } else if let Some(mut node) = node(entry, n, text.then_some(&line[..])) {
                node.marked = text && !mark.is_empty() && contains(&line, mark.as_bytes());
                saw_turn |= node.turn;
                seen.insert(node.uuid.clone());
                met |= a.as_deref() == Some(node.uuid.as_str()) && a == b;
                for at in [&mut a, &mut b] {
                    if at.as_deref() == Some(node.uuid.as_str()) {
                        at.clone_from(&node.parent);
                    }
                }
                nodes.push(node);
            }
        }
        // Whether the checkpoint's message and the newest turn are on one branch is known
        // once both have been read: the branch between them is written after the older one.
        let want_more = match &checkpoint {
            None => read < checkpoint_within,
            Some(Checkpoint { leaf: Some(leaf), .. }) => !seen.contains(leaf) || !saw_turn,
            Some(_) => false,
        };
        let apart = meet.is_some() && !met && a.is_some() && b.is_some();
        if read >= window && !want_more && !apart {
            break;
        }
    }
    // File order; `seq` grows with the position in the file.
    nodes.reverse();
    for node in &mut nodes {
        node.seq = n - node.seq;
    }
    let rewinds: Vec<usize> = rewinds.into_iter().map(|r| n - r).collect();
    Ok((nodes, checkpoint, rewinds))
}

fn node(entry: Entry, seq: usize, line: Option<&[u8]>) -> Option<Node> {
    if entry.sidechain {
        return None;
    }
    let uuid = entry.uuid?;
    let kind = entry.kind?;
    let role = match kind.as_str() {
        "user" => Some(Role::User),
        "assistant" => Some(Role::Assistant),
        _ => None,
    };
    let synthetic = entry.message.as_ref().and_then(|m| m.model.as_deref()) == Some("<synthetic>");
    let mut turn = role.is_some() && !entry.meta && !entry.api_error && !synthetic;
    let text = match (role, line) {
        (Some(role), Some(line)) if turn => {
            serde_json::from_slice::<WithMessage>(line).ok().and_then(|w| w.message).and_then(|message| {
                let id = message.id.clone();
                message_text(message.content.as_ref()).map(|text| Message {
                    role,
                    text,
                    timestamp: entry.timestamp,
                    id,
                })
            })
        }
        _ => None,
    };
    // A local command (`/compact` refused, `/cost`, ...) is no turn the model answered.
    if text.as_ref().is_some_and(|m| m.role == Role::User && is_local_command(&m.text)) {
        turn = false;
    }
    let text = text.filter(|_| turn);
    let parent = entry.parent.or(entry.logical_parent);
    Some(Node { uuid, parent, turn, text, seq, marked: false })
}

fn analyse(
    nodes: &[Node],
    checkpoint: Option<&Checkpoint>,
    rewinds: &[usize],
    logged: &[Logged<'_>],
) -> (Branches, Option<Meet>) {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.uuid.as_str(), i)).collect();
    let parent = |i: usize| nodes[i].parent.as_deref().and_then(|p| index.get(p).copied()).filter(|&p| p < i);
    let chain = |leaf: usize| {
        let mut set = HashSet::new();
        let mut at = Some(leaf);
        while let Some(i) = at {
            set.insert(i);
            at = parent(i);
        }
        set
    };
    let newest = match anchor(nodes, logged, parent) {
        // The newest turn written below the newest logged one, or that turn itself.
        Some(at) => {
            let mut below = HashSet::from([at]);
            let mut newest = at;
            for (i, node) in nodes.iter().enumerate().skip(at + 1) {
                if parent(i).is_some_and(|p| below.contains(&p)) {
                    below.insert(i);
                    if node.turn {
                        newest = i;
                    }
                }
            }
            newest
        }
        None => match nodes.iter().rposition(|n| n.turn) {
            Some(newest) => newest,
            None => return (Branches::default(), None),
        },
    };
    // The last message that descends from the newest turn: the leaf of its branch.
    let mut below = HashSet::from([newest]);
    for i in newest + 1..nodes.len() {
        if parent(i).is_some_and(|p| below.contains(&p)) {
            below.insert(i);
        }
    }
    let newest_leaf = below.iter().copied().max().unwrap_or(newest);
    let newest_chain = chain(newest_leaf);
    let last_prompt = nodes
        .iter()
        .enumerate()
        .rev()
        .filter(|(i, _)| newest_chain.contains(i))
        .find_map(|(_, n)| n.text.as_ref().filter(|m| m.role == Role::User).map(|m| m.text.clone()));

    let (followed, stale) = match checkpoint {
        None => (newest_chain, false),
        // A rewind chose its branch on purpose; one whose message was not found says nothing.
        Some(Checkpoint { chosen: true, .. }) | Some(Checkpoint { leaf: None, .. }) => {
            return (Branches::default(), None);
        }
        Some(Checkpoint { leaf: Some(leaf), .. }) => match index.get(leaf.as_str()) {
            None => return (Branches::default(), None),
            Some(&at) => {
                let named = chain(at);
                if named.contains(&newest) {
                    (named, false)
                } else if newest_chain.contains(&at) {
                    (newest_chain, false)
                } else {
                    (newest_chain, true)
                }
            }
        },
    };
    // The stale checkpoint's branch, when it meets the followed one only before what was
    // read: its messages have no fork point here, and are noted all the same.
    let unmet = match checkpoint {
        Some(Checkpoint { leaf: Some(leaf), .. }) if stale => index
            .get(leaf.as_str())
            .map(|&at| chain(at))
            .filter(|named| named.iter().all(|&i| parent(i).is_none_or(|p| !followed.contains(&p))))
            .filter(|named| !named.iter().any(|i| followed.contains(i))),
        _ => None,
    };
    let meet = unmet.as_ref().map(|named| {
        let oldest = |set: &HashSet<usize>| set.iter().copied().min().and_then(|i| nodes[i].parent.clone());
        (oldest(named), oldest(&followed))
    });

    // Side branches: messages off the followed chain whose ancestors meet it in what was read.
    let mut fork_at: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut side: Vec<Message> = Vec::new();
    let mut side_newest = None;
    let mut side_last = None;
    for i in 0..nodes.len() {
        fork_at[i] = if followed.contains(&i) { Some(i) } else { parent(i).and_then(|p| fork_at[p]) };
        let unread_fork = unmet.as_ref().is_some_and(|named| named.contains(&i));
        if (fork_at[i].is_none() && !unread_fork) || followed.contains(&i) || !nodes[i].turn {
            continue;
        }
        // A branch left by a rewind (a deliberate checkpoint after the fork) was left on purpose.
        if fork_at[i].is_some_and(|fork| rewinds.iter().any(|&r| r > nodes[fork].seq)) {
            continue;
        }
        if let Some(text) = &nodes[i].text {
            join_or_push(&mut side, text.clone());
            side_newest = Some(nodes[i].uuid.clone());
            side_last = Some(i);
        }
    }
    let told = side_last
        .is_some_and(|last| (last + 1..nodes.len()).any(|i| nodes[i].marked && followed.contains(&i)));
    let branches = Branches {
        newest_leaf: Some(nodes[newest_leaf].uuid.clone()),
        last_prompt,
        stale_checkpoint: stale,
        side,
        side_newest,
        told,
    };
    (branches, meet)
}

/// The message of the newest logged turn found in `nodes` (its reply, else its prompt), if any.
fn anchor(nodes: &[Node], logged: &[Logged<'_>], parent: impl Fn(usize) -> Option<usize>) -> Option<usize> {
    let said = |i: usize, role: Role, logged: &str| {
        nodes[i].text.as_ref().is_some_and(|m| m.role == role && same_text(&m.text, logged))
    };
    for turn in logged.iter().take(LOGGED_LOOKED_FOR) {
        let prompts: HashSet<usize> =
            (0..nodes.len()).filter(|&i| said(i, Role::User, turn.prompt)).collect();
        let Some(&prompt) = prompts.iter().max() else { continue };
        // The reply on that prompt's line (a reply alone could be any "OK").
        let below_prompt = |mut i: usize| loop {
            if prompts.contains(&i) {
                return true;
            }
            match parent(i) {
                Some(p) => i = p,
                None => return false,
            }
        };
        let reply = (0..nodes.len()).rev().find(|&i| said(i, Role::Assistant, turn.reply) && below_prompt(i));
        return Some(reply.unwrap_or(prompt));
    }
    None
}

/// Whether a user message with `prompt`'s text was written into the transcript at `path` at
/// `since` (Unix ms) or later: whether a turn's prompt reached it. Reads back to the first
/// message older than `since` (only the turn's own lines come after its prompt), [`WINDOW_MAX`]
/// at most.
pub fn prompt_written(path: &Path, prompt: &str, since: u64) -> Result<bool> {
    let read_err = || format!("could not read transcript {}", path.display());
    let mut lines = RevLines::open(path, WINDOW_MAX).with_context(read_err)?;
    while let Some(line) = lines.next_line().with_context(read_err)? {
        let Some(message) = super::parse_line(&line) else { continue };
        let at = message.timestamp.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if at.is_some_and(|at| at.as_millisecond() < since as i64) {
            return Ok(false); // older than the turn: its prompt is not there
        }
        if message.role == Role::User && same_text(&message.text, prompt) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What a turn wrote into a transcript (see [`turn_written`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Written {
    /// The last assistant text after the prompt, if claude wrote one.
    pub reply: Option<String>,
    /// When the turn's last line was written (Unix ms), if its line says.
    pub at: Option<u64>,
}

/// What the turn whose prompt is `prompt` (as logged: it may be cut short) wrote into the
/// transcript at `path` at `since` (Unix ms) or later: `None` when its prompt is not there.
/// Its reply is the last assistant text after the prompt, before the next prompt (tool calls
/// and their results carry none). Reads as [`prompt_written`] does.
pub fn turn_written(path: &Path, prompt: &str, since: u64) -> Result<Option<Written>> {
    let read_err = || format!("could not read transcript {}", path.display());
    let mut lines = RevLines::open(path, WINDOW_MAX).with_context(read_err)?;
    let ms = |m: &Message| {
        let at = m.timestamp.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
        at.and_then(|at| u64::try_from(at.as_millisecond()).ok())
    };
    // The messages after the one being read, newest first.
    let mut after: Vec<Message> = Vec::new();
    while let Some(line) = lines.next_line().with_context(read_err)? {
        let Some(message) = super::parse_line(&line) else { continue };
        if ms(&message).is_some_and(|at| at < since) {
            return Ok(None); // older than the turn: its prompt is not there
        }
        if message.role == Role::User && same_text(&message.text, prompt) {
            after.reverse();
            let turn: Vec<&Message> = after.iter().take_while(|m| m.role == Role::Assistant).collect();
            let at = turn.last().copied().and_then(ms).or_else(|| ms(&message));
            // Streaming writes one line per content block: the lines of the last message.
            let reply = turn.last().map(|last| match &last.id {
                Some(id) => {
                    let parts: Vec<&str> =
                        turn.iter().filter(|m| m.id.as_ref() == Some(id)).map(|m| m.text.as_str()).collect();
                    parts.join("\n")
                }
                None => last.text.clone(),
            });
            return Ok(Some(Written { reply, at }));
        }
        after.push(message);
    }
    Ok(None)
}

/// The user lines Claude Code writes when a person stops a turn after Claude began to answer
/// (Esc in a terminal, a stream-json `interrupt`): measured on 2.0.77, 2.1.328 and 2.1.332
/// (docs/CLAUDE_CODE.md). On 2.1.x a turn stopped before any answer came writes none.
pub const INTERRUPT_LINES: [&str; 2] =
    ["[Request interrupted by user]", "[Request interrupted by user for tool use]"];

/// The most of a transcript's end that [`stopped_by_interrupt`] reads.
pub const STOPPED_TAIL: u64 = 64 * 1024;

/// Whether the turn with `prompt` (as logged), marked when the transcript at `path` was
/// `from` bytes long, has ended by an interrupt: the transcript's last user or assistant line
/// is one of [`INTERRUPT_LINES`] (nothing after it but Claude Code's bookkeeping), it lies
/// after `from` (so it was written after the mark, whatever the clocks say), and no other
/// prompt came between the turn's prompt and it. Reads the bytes after `from`, the last
/// [`STOPPED_TAIL`] at most. `false` whenever in doubt: a line being written, a line that
/// does not parse, a transcript shorter than at the mark.
pub fn stopped_by_interrupt(path: &Path, prompt: &str, from: u64) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let read_err = || format!("could not read transcript {}", path.display());
    let mut file = open_regular(path).with_context(read_err)?;
    let len = file.metadata().with_context(read_err)?.len();
    if len <= from {
        return Ok(false); // nothing written since the mark, or another file
    }
    let start = from.max(len - STOPPED_TAIL.min(len));
    file.seek(SeekFrom::Start(start)).with_context(read_err)?;
    let mut tail = Vec::new();
    file.take(len - start).read_to_end(&mut tail).with_context(read_err)?;
    let Some(whole) = tail.strip_suffix(b"\n") else { return Ok(false) }; // a line being written
    let mut lines: Vec<&[u8]> = whole.split(|&b| b == b'\n').collect();
    if start > from {
        lines.remove(0); // read from the middle of a line
    }
    let mut interrupted = false;
    for line in lines.iter().rev().filter(|l| !l.trim_ascii().is_empty()) {
        let Ok(line) = serde_json::from_slice::<serde_json::Value>(line) else { return Ok(false) };
        let kind = line.get("type").and_then(serde_json::Value::as_str);
        let flag = |name: &str| line.get(name).and_then(serde_json::Value::as_bool).unwrap_or(false);
        if !matches!(kind, Some("user" | "assistant")) || flag("isSidechain") {
            continue; // bookkeeping, or a sub-agent's line
        }
        let user = kind == Some("user") && !flag("isMeta");
        let text = line.pointer("/message/content").and_then(|c| message_text(Some(c)));
        if !interrupted {
            // The newest message: the interrupt, or the turn may go on.
            if !(user && text.is_some_and(|t| INTERRUPT_LINES.contains(&t.trim()))) {
                return Ok(false);
            }
            interrupted = true;
        } else if user && let Some(text) = text {
            // The turn's prompt; another prompt (a message typed into the turn) is not sure.
            return Ok(same_text(&text, prompt));
        }
    }
    // Its prompt lies before what was read (before the mark, or the turn wrote much).
    Ok(interrupted)
}

/// A transcript message's text is the logged one (which may be cut short, ending in `…`).
fn same_text(text: &str, logged: &str) -> bool {
    let (text, logged) = (text.trim(), logged.trim());
    if logged.is_empty() {
        return false;
    }
    text == logged
        || logged
            .strip_suffix('…')
            .map(str::trim_end)
            .is_some_and(|head| !head.is_empty() && text.starts_with(head))
}

/// The line Claude Code writes for a local slash command or its output.
fn is_local_command(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with("<command-name>")
        || text.starts_with("<command-message>")
        || text.starts_with("<local-command-")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Streaming writes one assistant line per content block: lines of one message join.
fn join_or_push(out: &mut Vec<Message>, msg: Message) {
    if let Some(last) = out.last_mut()
        && last.role == Role::Assistant
        && msg.role == Role::Assistant
        && msg.id.is_some()
        && last.id == msg.id
    {
        last.text = format!("{}\n{}", last.text, msg.text);
        return;
    }
    out.push(msg);
}

/// Longest `lastPrompt` written into a checkpoint.
const LAST_PROMPT_MAX: usize = 1000;

/// Appends a `last-prompt` checkpoint naming the newest branch's leaf, so that every later
/// resume (a bot's, a terminal's) follows the branch with the newest turn. Does nothing
/// unless the newest checkpoint is stale, or when the transcript does not end with a whole
/// line (a writer is mid-line: appending would tear it). One `write` with `O_APPEND`, as
/// Claude Code appends its own lines. Returns whether it wrote.
pub fn point_resume_at(path: &Path, session: &str, branches: &Branches) -> Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let (true, Some(leaf)) = (branches.stale_checkpoint, &branches.newest_leaf) else {
        return Ok(false);
    };
    let mut line = serde_json::json!({"type": "last-prompt"});
    if let Some(prompt) = &branches.last_prompt {
        line["lastPrompt"] = crate::ident::shorten(prompt, LAST_PROMPT_MAX).into();
    }
    line["leafUuid"] = leaf.clone().into();
    line["sessionId"] = session.into();
    let mut bytes = serde_json::to_vec(&line)?;
    bytes.push(b'\n');
    let file = open_regular(path).with_context(|| format!("could not open {}", path.display()))?;
    if !ends_with_newline(&file)? {
        return Ok(false);
    }
    drop(file);
    // A transcript that is a symlink (dotfiles synced, a projects dir moved) is read through
    // the link, as Claude Code reads and appends through it: corrected at its target when that
    // is a regular file of this user's, never through a link to someone else's file.
    let target =
        std::fs::canonicalize(path).with_context(|| format!("could not resolve {}", path.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&target)
        .with_context(|| format!("could not open {} to append", target.display()))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(false);
    }
    if target != path && std::os::unix::fs::MetadataExt::uid(&meta) != unsafe { libc::geteuid() } {
        anyhow::bail!(
            "{} is a link to {}, which is not yours: its resume checkpoint was not corrected",
            path.display(),
            target.display()
        );
    }
    file.write_all(&bytes).with_context(|| format!("could not append to {}", path.display()))?;
    Ok(true)
}

fn ends_with_newline(file: &std::fs::File) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(kind: &str, uuid: &str, parent: Option<&str>, text: &str) -> String {
        let content = if kind == "user" { json!(text) } else { json!([{"type": "text", "text": text}]) };
        json!({"type": kind, "uuid": uuid, "parentUuid": parent, "isSidechain": false,
            "message": {"role": kind, "content": content, "id": format!("m-{uuid}")}})
        .to_string()
    }

    fn system(uuid: &str, parent: &str) -> String {
        json!({"type": "system", "subtype": "informational", "uuid": uuid, "parentUuid": parent,
            "content": "UserPromptSubmit operation blocked by hook"})
        .to_string()
    }

    fn checkpoint(leaf: &str) -> String {
        json!({"type": "last-prompt", "lastPrompt": "x", "leafUuid": leaf, "sessionId": "s"}).to_string()
    }

    fn file(lines: &[String]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
        f
    }

    fn interrupt(text: &str) -> String {
        json!({"type": "user", "isSidechain": false, "timestamp": "2026-12-04T11:52:42.389Z",
            "message": {"role": "user", "content": [{"type": "text", "text": text}]}})
        .to_string()
    }

    fn tool_use() -> String {
        json!({"type": "assistant", "message": {"role": "assistant", "id": "m-t",
            "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]}})
        .to_string()
    }

    fn a_tool_result() -> String {
        json!({"type": "user", "message": {"role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "hi"}]}})
        .to_string()
    }

    /// The length of `lines` written, as a marker notes it.
    fn len_of(lines: &[String]) -> u64 {
        lines.iter().map(|l| l.len() as u64 + 1).sum()
    }

    /// A turn whose last message is an interrupt line, written after the mark, has ended;
    /// one still working, stopped before any answer (no line), or stopped before the mark
    /// (a person who pressed Esc and sent the same prompt again) has not.
    #[test]
    fn a_turn_ends_by_an_interrupt_line_written_after_its_mark() {
        let before = vec![msg("user", "p1", None, "plan PORTO"), msg("assistant", "a1", Some("p1"), "ok")];
        let mark = len_of(&before);
        let turn = |more: &[String]| {
            let mut all = before.clone();
            all.push(msg("user", "p2", Some("a1"), "job [hold=E1]"));
            all.extend_from_slice(more);
            file(&all)
        };
        let stopped = |f: &tempfile::NamedTempFile, from: u64| {
            stopped_by_interrupt(f.path(), "job [hold=E1]", from).unwrap()
        };
        let bookkeeping = checkpoint("p2");
        for line in INTERRUPT_LINES {
            let f = turn(&[tool_use(), a_tool_result(), interrupt(line), bookkeeping.clone()]);
            assert!(stopped(&f, mark), "{line}");
        }
        // Still working: a tool call after its result, or an answer after an interrupt.
        assert!(!stopped(&turn(&[tool_use()]), mark));
        assert!(!stopped(&turn(&[tool_use(), a_tool_result()]), mark));
        let went_on = turn(&[interrupt(INTERRUPT_LINES[1]), tool_use()]);
        assert!(!stopped(&went_on, mark));
        // Stopped before any answer: no line to tell.
        assert!(!stopped(&turn(std::slice::from_ref(&bookkeeping)), mark));
        // The interrupt lies before the mark: a new turn of the same prompt, not yet written.
        let old = turn(&[interrupt(INTERRUPT_LINES[0])]);
        assert!(!stopped(&old, std::fs::metadata(old.path()).unwrap().len()));
        // Another prompt between (typed into the turn): not sure.
        let typed = turn(&[msg("user", "p3", Some("p2"), "also this"), interrupt(INTERRUPT_LINES[0])]);
        assert!(!stopped(&typed, mark));
        // A prompt that only looks like one, a line being written, a line that is no JSON.
        assert!(!stopped(&turn(&[msg("user", "x", Some("p2"), "[Request interrupted by user] no")]), mark));
        let torn = turn(&[interrupt(INTERRUPT_LINES[0])]);
        write!(torn.as_file(), "{{\"type\": \"assis").unwrap();
        assert!(!stopped(&torn, mark));
        assert!(!stopped(&turn(&[interrupt(INTERRUPT_LINES[0]), "not json".into()]), mark));
        // A sub-agent's line after it does not count; a transcript shorter than the mark does.
        let side = json!({"type": "assistant", "isSidechain": true, "message": {"content": "x"}}).to_string();
        assert!(stopped(&turn(&[interrupt(INTERRUPT_LINES[0]), side]), mark));
        assert!(!stopped(&turn(&[interrupt(INTERRUPT_LINES[0])]), 1 << 30));
    }

    /// A person's turn (p1/a1), then a bot's two turns on it (b1..b4).
    fn base() -> Vec<String> {
        vec![
            msg("user", "p1", None, "plan PORTO"),
            msg("assistant", "a1", Some("p1"), "ok PORTO"),
            msg("user", "b1", Some("a1"), "book LISBON"),
            msg("assistant", "b2", Some("b1"), "booked LISBON"),
            msg("user", "b3", Some("b2"), "train EVORA"),
            msg("assistant", "b4", Some("b3"), "train EVORA"),
        ]
    }

    fn logged<'a>(turns: &[(&'a str, &'a str)]) -> Vec<Logged<'a>> {
        turns.iter().rev().map(|&(prompt, reply)| Logged { prompt, reply }).collect()
    }

    /// Claude Code's line for a terminal refused as behind, on its stale leaf (2.1.328).
    fn synthetic(uuid: &str, parent: &str) -> String {
        json!({"type": "assistant", "uuid": uuid, "parentUuid": parent, "isSidechain": false,
            "message": {"role": "assistant", "model": "<synthetic>", "id": format!("m-{uuid}"),
                "content": [{"type": "text", "text": "No response requested."}]}})
        .to_string()
    }

    #[test]
    fn a_synthetic_line_after_a_logged_answer_is_no_turn_and_never_outranks_it() {
        // The terminal loaded while the bot's prompt b3 was unanswered; refused, Claude Code
        // wrote a synthetic answer on b3, after the bot's real one, and checkpointed it.
        let mut lines = base();
        lines.push(checkpoint("b4"));
        lines.push(synthetic("s1", "b3"));
        lines.push(system("n1", "s1"));
        lines.push(checkpoint("n1"));
        let turns = logged(&[("book LISBON", "booked LISBON"), ("train EVORA", "train EVORA")]);
        for (reach, turns) in
            [(Reach::RESUME, &turns[..]), (Reach::EXIT, &turns[..]), (Reach::RESUME, &[][..])]
        {
            let b = read_anchored(file(&lines).path(), reach, "MARK", turns).unwrap();
            assert!(b.stale_checkpoint, "{b:?}");
            assert_eq!(b.newest_leaf.as_deref(), Some("b4"));
            assert!(b.side.is_empty(), "a synthetic line is no turn to tell: {:?}", b.side);
        }
    }

    #[test]
    fn an_answer_on_a_stale_leaf_without_a_turn_never_outranks_the_newest_logged_turn() {
        // `!cmd` in a terminal that loaded before the bot's b1..b4: Claude Code writes the
        // command and a model's answer on a1, newer in the file than every logged turn.
        let mut lines = base();
        lines.push(checkpoint("b4"));
        lines.push(msg("user", "x1", Some("a1"), "<bash-input>ls</bash-input>"));
        lines.push(msg("assistant", "x2", Some("x1"), "the files"));
        lines.push(checkpoint("x2"));
        let turns = logged(&[
            ("plan PORTO", "ok PORTO"),
            ("book LISBON", "booked LISBON"),
            ("train EVORA", "train EVORA"),
        ]);
        let b = read_anchored(file(&lines).path(), Reach::RESUME, "MARK", &turns).unwrap();
        assert!(b.stale_checkpoint && b.newest_leaf.as_deref() == Some("b4"), "{b:?}");
        let told: Vec<&str> = b.side.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(told, ["<bash-input>ls</bash-input>", "the files"], "the other branch is told, not lost");
        // Without a turn log, the newest message in the file wins, as before.
        let b = read_anchored(file(&lines).path(), Reach::RESUME, "MARK", &[]).unwrap();
        assert_eq!(b.newest_leaf.as_deref(), Some("x2"));
        // Turns written below the newest logged one are newer still (that process had seen it).
        let mut lines = base();
        lines.push(msg("user", "c1", Some("b4"), "a script without hooks"));
        lines.push(msg("assistant", "c2", Some("c1"), "done"));
        lines.push(checkpoint("b4"));
        let b = read_anchored(file(&lines).path(), Reach::RESUME, "MARK", &turns).unwrap();
        assert!(!b.stale_checkpoint && b.newest_leaf.as_deref() == Some("c2"), "{b:?}");
        // A logged prompt cut short (`…`) is found by its beginning; a reply is looked for only
        // on its own prompt's line.
        let long = "book LISBON and more";
        let turns = logged(&[("book LISB…", "booked LISBON")]);
        let mut lines = base();
        lines[2] = msg("user", "b1", Some("a1"), long);
        lines.push(msg("assistant", "y1", Some("a1"), "booked LISBON"));
        let b = read_anchored(file(&lines).path(), Reach::RESUME, "MARK", &turns).unwrap();
        assert_eq!(b.newest_leaf.as_deref(), Some("b4"), "{b:?}");
    }

    #[test]
    fn a_straight_transcript_has_no_fork_and_nothing_to_point() {
        let mut lines = base();
        lines.push(checkpoint("b4"));
        let f = file(&lines);
        let b = read(f.path(), Reach::RESUME, "MARK").unwrap();
        assert_eq!(b.newest_leaf.as_deref(), Some("b4"));
        assert!(!b.stale_checkpoint && b.side.is_empty());
        assert!(!point_resume_at(f.path(), "s", &b).unwrap());
    }

    #[test]
    fn a_checkpoint_on_an_ancestor_is_followed_down_and_not_stale() {
        let mut lines = base();
        lines.insert(2, checkpoint("a1"));
        let b = read(file(&lines).path(), Reach::RESUME, "MARK").unwrap();
        assert!(!b.stale_checkpoint && b.side.is_empty());
    }

    #[test]
    fn a_terminal_that_exits_on_a_refusal_notice_off_its_stale_leaf_is_pointed_back() {
        let mut lines = base();
        lines.push(system("n1", "a1")); // the refusal notice on the terminal's old leaf
        lines.push(checkpoint("n1")); // its exit checkpoint
        let f = file(&lines);
        let b = read(f.path(), Reach::RESUME, "MARK").unwrap();
        assert!(b.stale_checkpoint);
        assert_eq!(b.newest_leaf.as_deref(), Some("b4"));
        assert_eq!(b.last_prompt.as_deref(), Some("train EVORA"));
        assert!(b.side.is_empty(), "a notice is no turn: {:?}", b.side);
        assert!(point_resume_at(f.path(), "s", &b).unwrap());
        let after = read(f.path(), Reach::RESUME, "MARK").unwrap();
        assert!(!after.stale_checkpoint && after.side.is_empty());
        let text = std::fs::read_to_string(f.path()).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(
            last,
            json!({"type":"last-prompt","lastPrompt":"train EVORA","leafUuid":"b4","sessionId":"s"})
        );
    }

    #[test]
    fn turns_on_a_side_branch_are_found_once_the_newest_branch_is_followed() {
        // Two processes answered from a1: t1/t2 first, then the bot's b1..b4 (newest).
        let mut lines = base();
        lines.insert(2, msg("user", "t1", Some("a1"), "person says BRAGA"));
        lines.insert(3, msg("assistant", "t2", Some("t1"), "noted BRAGA"));
        lines.insert(4, checkpoint("t2"));
        let b = read(file(&lines).path(), Reach::RESUME, "MARK").unwrap();
        assert!(b.stale_checkpoint);
        let side: Vec<_> = b.side.iter().map(|m| (m.role, m.text.as_str())).collect();
        assert_eq!(side, vec![(Role::User, "person says BRAGA"), (Role::Assistant, "noted BRAGA")]);
        assert_eq!(b.side_newest.as_deref(), Some("t2"));
        assert!(!b.told);

        // Told on the followed branch after the side turns: told. On the side branch: not.
        let attachment = |uuid: &str, parent: &str| {
            json!({"type": "attachment", "uuid": uuid, "parentUuid": parent,
                "attachment": {"type": "hook_additional_context", "content": ["MARK: BRAGA"]}})
            .to_string()
        };
        let mut told = lines.clone();
        told.push(msg("user", "b5", Some("b4"), "next"));
        told.push(attachment("n1", "b5"));
        assert!(read(file(&told).path(), Reach::RESUME, "MARK").unwrap().told);
        let mut elsewhere = lines.clone();
        elsewhere.push(attachment("n1", "t2"));
        elsewhere.push(msg("user", "b5", Some("b4"), "next"));
        assert!(!read(file(&elsewhere).path(), Reach::RESUME, "MARK").unwrap().told);
    }

    #[test]
    fn the_newest_checkpoint_on_the_newest_branch_leaves_older_branches_as_side() {
        let mut lines = base();
        lines.push(msg("user", "t1", Some("a1"), "person says BRAGA"));
        lines.push(msg("assistant", "t2", Some("t1"), "noted BRAGA"));
        lines.push(checkpoint("t2"));
        let b = read(file(&lines).path(), Reach::RESUME, "MARK").unwrap();
        assert!(!b.stale_checkpoint);
        assert_eq!(b.newest_leaf.as_deref(), Some("t2"));
        let side: Vec<_> = b.side.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(side, vec!["book LISBON", "booked LISBON", "train EVORA", "train EVORA"]);
    }

    #[test]
    fn a_rewind_chose_its_branch_and_compaction_keeps_the_chain() {
        let mut lines = base();
        lines.push(json!({"type":"last-prompt","leafUuid":"a1","rewound":true,"sessionId":"s"}).to_string());
        lines.push(msg("user", "r1", Some("a1"), "after the rewind"));
        let b = read(file(&lines).path(), Reach::RESUME, "MARK").unwrap();
        assert!(b.side.is_empty() && !b.stale_checkpoint, "{b:?}");

        // What `/rewind` wrote on 2.1.328: the prompt after it on a new branch, then an
        // explicit checkpoint naming no message; the exit checkpoint on the new branch.
        let mut lines = base();
        lines.push(msg("user", "g1", Some("b2"), "after the rewind GAMMA"));
        lines.push(
            json!({"type":"last-prompt","leafUuid":"00000000-0000-0000-0000-000000000000",
                "explicit":true,"sessionId":"s"})
            .to_string(),
        );
        let b = read(file(&lines).path(), Reach::RESUME, "MARK").unwrap();
        assert_eq!(b, Branches::default());
        lines.push(msg("assistant", "g2", Some("g1"), "ok GAMMA"));
        lines.push(checkpoint("g2"));
        let b = read(file(&lines).path(), Reach::RESUME, "MARK").unwrap();
        assert!(b.side.is_empty() && !b.stale_checkpoint, "the turns rewound away are no fork: {b:?}");

        let mut lines = base();
        lines.push(
            json!({"type":"system","subtype":"compact_boundary","uuid":"c0","parentUuid":null,
                "logicalParentUuid":"b4"})
            .to_string(),
        );
        lines.push(msg("user", "c1", Some("c0"), "after compaction"));
        lines.push(checkpoint("c1"));
        let b = read(file(&lines).path(), Reach::RESUME, "MARK").unwrap();
        assert!(b.side.is_empty() && !b.stale_checkpoint, "{b:?}");
    }

    #[test]
    fn a_checkpoint_beyond_the_window_is_searched_for_and_a_torn_tail_is_never_appended_to() {
        let mut lines = base();
        lines.push(system("n1", "a1"));
        lines.push(checkpoint("n1"));
        for i in 0..200 {
            let parent = if i == 0 { "b4".to_owned() } else { format!("x{}", i - 1) };
            lines.push(msg("assistant", &format!("x{i}"), Some(&parent), &"pad ".repeat(50)));
        }
        let f = file(&lines);
        // A tiny window still reaches back to the message the checkpoint names.
        let b = read(f.path(), Reach { window: 1024, ..Reach::EXIT }, "MARK").unwrap();
        assert!(b.stale_checkpoint);
        assert_eq!(b.newest_leaf.as_deref(), Some("x199"));
        // At an exit: the checkpoint at the end, on a notice written after the newest turn.
        let mut lines = base();
        lines.push(system("n1", "a1"));
        lines.push(checkpoint("n1"));
        let b = read(file(&lines).path(), Reach::EXIT, "MARK").unwrap();
        assert!(b.stale_checkpoint && b.newest_leaf.as_deref() == Some("b4"), "{b:?}");
        let mut lines = base();
        lines.push(system("n1", "b4"));
        lines.push(checkpoint("n1"));
        let b = read(file(&lines).path(), Reach::EXIT, "MARK").unwrap();
        assert!(!b.stale_checkpoint, "{b:?}");

        // A transcript that is a link (a synced or moved projects dir) is corrected at its
        // target.
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("t.jsonl");
        std::os::unix::fs::symlink(f.path(), &link).unwrap();
        let mut lines = base();
        lines.push(system("n1", "a1"));
        lines.push(checkpoint("n1"));
        std::fs::write(f.path(), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        let b = read(&link, Reach::EXIT, "MARK").unwrap();
        assert!(b.stale_checkpoint);
        assert!(point_resume_at(&link, "s", &b).unwrap());
        assert!(!read(&link, Reach::EXIT, "MARK").unwrap().stale_checkpoint, "corrected through the link");
        let b = read(f.path(), Reach::EXIT, "MARK").unwrap();
        assert!(!b.stale_checkpoint && std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

        let mut torn = std::fs::OpenOptions::new().append(true).open(f.path()).unwrap();
        torn.write_all(b"{\"type\":\"assis").unwrap();
        assert!(!point_resume_at(f.path(), "s", &b).unwrap());
    }

    /// A terminal behind since `a1` answered there (its checkpoint on its answer) after the
    /// bot's long branch of `pad` bytes: the fork point lies `pad` bytes before the end.
    fn fork_far_back(pad: usize) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut w = std::io::BufWriter::new(&mut f);
        for l in &base()[..3] {
            writeln!(w, "{l}").unwrap();
        }
        let chunk = "tool output ".repeat(5000); // about 60 KiB a message
        let (mut parent, mut written, mut i) = ("b1".to_owned(), 0, 0);
        while written < pad {
            let line = msg("assistant", &format!("x{i}"), Some(&parent), &chunk);
            written += line.len() + 1;
            writeln!(w, "{line}").unwrap();
            parent = format!("x{i}");
            i += 1;
        }
        for l in [
            msg("assistant", "b2", Some(&parent), "booked LISBON"),
            msg("user", "b3", Some("b2"), "train EVORA"),
            msg("assistant", "b4", Some("b3"), "train EVORA"),
            msg("user", "t1", Some("a1"), "what about TERMINAL"),
            msg("assistant", "t2", Some("t1"), "on the stale leaf TERMINAL"),
            checkpoint("t2"),
        ] {
            writeln!(w, "{l}").unwrap();
        }
        drop(w);
        f
    }

    fn noted(b: &Branches) -> bool {
        b.side.iter().any(|m| m.text.contains("what about TERMINAL"))
            && b.side.iter().any(|m| m.text.contains("on the stale leaf TERMINAL"))
    }

    #[test]
    fn a_fork_point_before_what_is_read_still_notes_the_stale_branch_and_points_at_the_newest() {
        let logged = logged(&[("train EVORA", "train EVORA")]);
        let small = Reach { window: 16 * 1024, checkpoint_within: 16 * 1024, search: 1024 * 1024 };
        // The fork point past the window, within the search: read on to it.
        let b = read_anchored(fork_far_back(300 * 1024).path(), small, "MARK", &logged).unwrap();
        assert!(b.stale_checkpoint && b.newest_leaf.as_deref() == Some("b4"), "{b:?}");
        assert!(noted(&b), "{b:?}");
        assert!(!b.side.iter().any(|m| m.text.contains("LISBON")), "the followed branch is no side: {b:?}");
        // Past the search too: the checkpoint's branch is noted all the same.
        let b = read_anchored(fork_far_back(2 * 1024 * 1024).path(), small, "MARK", &logged).unwrap();
        assert!(b.stale_checkpoint && b.newest_leaf.as_deref() == Some("b4"), "{b:?}");
        assert!(noted(&b), "{b:?}");
    }

    /// A transcript over [`WINDOW_MAX`] whose fork point lies before what a resume reads: the
    /// resume is pointed at the newest turn, and the stale branch's turns are in the note.
    #[test]
    fn a_transcript_over_64_mib_with_its_fork_point_out_of_reach_loses_no_turn() {
        let f = fork_far_back(WINDOW_MAX as usize + 1024 * 1024);
        assert!(f.as_file().metadata().unwrap().len() > WINDOW_MAX);
        let logged = logged(&[("train EVORA", "train EVORA")]);
        let b = read_anchored(f.path(), Reach::RESUME, "MARK", &logged).unwrap();
        assert!(b.stale_checkpoint && b.newest_leaf.as_deref() == Some("b4"), "{b:?}");
        assert!(noted(&b), "{b:?}");
        assert!(point_resume_at(f.path(), "s", &b).unwrap());
        let after = read_anchored(f.path(), Reach::RESUME, "MARK", &logged).unwrap();
        assert!(!after.stale_checkpoint && after.newest_leaf.as_deref() == Some("b4"), "{after:?}");
    }

    fn at(mut line: String, timestamp: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["timestamp"] = json!(timestamp);
        line = v.to_string();
        line
    }

    fn tool_result(uuid: &str, parent: &str) -> String {
        json!({"type": "user", "uuid": uuid, "parentUuid": parent, "isSidechain": false,
            "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}})
        .to_string()
    }

    #[test]
    fn what_a_turn_wrote_is_its_prompt_and_its_last_assistant_text() {
        let ms = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64;
        let mut lines = vec![at(msg("user", "p1", None, "plan PORTO"), "2026-01-01T10:00:00Z")];
        let since = ms("2026-01-01T10:01:00Z");
        // The prompt alone (the run died waiting for the model).
        lines.push(at(msg("user", "b1", Some("p1"), "a long task"), "2026-01-01T10:01:01Z"));
        let w = turn_written(file(&lines).path(), "a long task", since).unwrap().unwrap();
        assert_eq!(w, Written { reply: None, at: Some(ms("2026-01-01T10:01:01Z")) });
        // A tool call, its result, then the text that ended the turn.
        lines.push(at(msg("assistant", "b2", Some("b1"), "looking"), "2026-01-01T10:01:02Z"));
        lines.push(tool_result("b3", "b2"));
        lines.push(at(msg("assistant", "b4", Some("b3"), "done: LISBON"), "2026-01-01T10:01:03Z"));
        let w = turn_written(file(&lines).path(), "a long task", since).unwrap().unwrap();
        assert_eq!(w.reply.as_deref(), Some("done: LISBON"));
        assert_eq!(w.at, Some(ms("2026-01-01T10:01:03Z")));
        // A cut prompt (as logged) is found; a prompt older than the turn is not its prompt.
        assert!(turn_written(file(&lines).path(), "a long…", since).unwrap().is_some());
        assert!(turn_written(file(&lines).path(), "plan PORTO", since).unwrap().is_none());
        assert!(turn_written(file(&lines).path(), "never sent", since).unwrap().is_none());
        // What the next prompt brought is not this turn's reply.
        lines.push(at(msg("user", "c1", Some("b4"), "next"), "2026-01-01T10:02:00Z"));
        lines.push(at(msg("assistant", "c2", Some("c1"), "next reply"), "2026-01-01T10:02:01Z"));
        let w = turn_written(file(&lines).path(), "a long task", since).unwrap().unwrap();
        assert_eq!(w.reply.as_deref(), Some("done: LISBON"));
    }
}
