//! Property tests: the transcript tail reader against a forward split, the transcript
//! message reader against a forward model, key/name/session-id validation against the
//! documented sets, the branch reader's checkpoint correction against the chains it reads, and
//! (through the binary, fewer cases) the hook input parser.
//!
//! `PROPTEST_CASES=N` runs every property N times instead of its default, for a long run.
//! Inputs that once failed are kept below as plain regression tests.

mod support;

use std::io::Write;
use std::path::Path;

use clawsess::ident::{Key, MAX_LEN, Name, SessionId, file_stem};
use clawsess::transcript::{self, Message, RevLines, Role, parse_line};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::testenv::{Env, walk};

/// The reader's block size (private in `transcript`): edges are at multiples of it from
/// the end of the file.
const BLOCK: usize = 64 * 1024;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    ProptestConfig { cases, max_shrink_iters: 2000, ..ProptestConfig::default() }
}

fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

/// The lines `RevLines` gives, put back in file order.
fn rev_lines(path: &Path, limit: u64) -> Vec<Vec<u8>> {
    let mut r = RevLines::open(path, limit).unwrap();
    let mut out = Vec::new();
    while let Some(line) = r.next_line().unwrap() {
        out.push(line);
    }
    out.reverse();
    out
}

/// The lines of a forward split, as `RevLines` gives them: an empty file has none, and an
/// empty *first* line is not given either (a file "\n" gives one empty line, not two).
/// That quirk is harmless for transcripts (an empty line is no message); it is pinned here
/// so that a change to it is a decision, see `an_empty_first_line_is_not_returned`.
fn forward(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines[0].is_empty() {
        lines.remove(0);
    }
    lines
}

/// `len` bytes cut from a run of multi-byte characters: cuts fall inside characters.
fn multibyte(len: usize, phase: usize) -> Vec<u8> {
    "aé€😀".repeat(len / 10 + 2).into_bytes().into_iter().skip(phase % 10).take(len).collect()
}

/// Line contents: ASCII, any Unicode, raw bytes (no newline).
fn line_content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        "\\PC{0,20}".prop_map(|s: String| s.replace('\n', " ").into_bytes()),
        prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..60),
        (0usize..200, 0usize..10).prop_map(|(n, p)| multibyte(n, p)),
    ]
}

fn join(lines: &[Vec<u8>], trailing_newline: bool) -> Vec<u8> {
    let mut bytes = lines.join(&b'\n');
    if trailing_newline {
        bytes.push(b'\n');
    }
    bytes
}

/// Files of a few lines, some of which end near a block edge counted from the end.
fn big_file() -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![
        0usize..100,
        BLOCK - 3..BLOCK + 3,
        2 * BLOCK - 3..2 * BLOCK + 3,
        BLOCK / 2 - 2..BLOCK / 2 + 2,
        1usize..3 * BLOCK + 100,
    ];
    (prop::collection::vec((len, 0usize..10), 1..5), any::<bool>())
        .prop_map(|(lens, nl)| join(&lens.iter().map(|&(n, p)| multibyte(n, p)).collect::<Vec<_>>(), nl))
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn rev_lines_are_the_forward_lines_of_small_files(
        lines in prop::collection::vec(line_content(), 0..40),
        nl in any::<bool>(),
    ) {
        let bytes = join(&lines, nl);
        let f = file_with(&bytes);
        prop_assert_eq!(rev_lines(f.path(), u64::MAX), forward(&bytes));
    }

    #[test]
    fn rev_lines_of_raw_bytes_are_the_forward_lines(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let f = file_with(&bytes);
        prop_assert_eq!(rev_lines(f.path(), u64::MAX), forward(&bytes));
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn rev_lines_are_the_forward_lines_across_block_edges(bytes in big_file()) {
        let f = file_with(&bytes);
        prop_assert_eq!(rev_lines(f.path(), u64::MAX), forward(&bytes));
    }

    /// With a scan limit, the reader gives the last lines it could read whole, never a
    /// piece of a line.
    #[test]
    fn a_scan_limit_gives_whole_last_lines_only(bytes in big_file(), cut in 0.0f64..1.2) {
        let f = file_with(&bytes);
        let limit = (bytes.len() as f64 * cut) as u64;
        let got = rev_lines(f.path(), limit);
        let all = forward(&bytes);
        prop_assert!(got.len() <= all.len());
        prop_assert_eq!(&got[..], &all[all.len() - got.len()..]);
        if limit >= bytes.len() as u64 {
            prop_assert_eq!(got.len(), all.len());
        }
    }
}

#[test]
fn an_empty_first_line_is_not_returned() {
    for (bytes, want) in [
        (&b""[..], vec![]),
        (b"\n", vec![b"".to_vec()]),
        (b"\n\n", vec![b"".to_vec(), b"".to_vec()]),
        (b"\nabc", vec![b"abc".to_vec()]),
        (b"abc", vec![b"abc".to_vec()]),
    ] {
        let f = file_with(bytes);
        assert_eq!(rev_lines(f.path(), u64::MAX), want, "{bytes:?}");
    }
}

#[test]
fn a_line_longer_than_max_line_is_skipped_and_its_neighbours_kept() {
    let long = vec![b'x'; transcript::MAX_LINE + BLOCK + 1];
    let mid = multibyte(3 * BLOCK + 1, 3);
    let bytes = join(&[b"first".to_vec(), long, mid.clone(), b"last".to_vec()], false);
    let f = file_with(&bytes);
    assert_eq!(rev_lines(f.path(), u64::MAX), vec![b"first".to_vec(), mid, b"last".to_vec()]);
    let starts_long = join(&[vec![b'y'; transcript::MAX_LINE + 2 * BLOCK], b"only".to_vec()], true);
    let f = file_with(&starts_long);
    assert_eq!(rev_lines(f.path(), u64::MAX), vec![b"only".to_vec(), Vec::new()]);
}

// ---------------------------------------------------------------------------------------
// Transcript messages.
// ---------------------------------------------------------------------------------------

fn small_text() -> BoxedStrategy<String> {
    prop_oneof![4 => "\\PC{0,30}", 1 => "[ \t\n]{0,3}"].boxed()
}

/// Texts of about one block of multi-byte characters, so that lines cross block edges
/// with characters split between blocks.
fn large_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => small_text(),
        1 => (30_000usize..34_000).prop_map(|n| format!("{}😀", "é".repeat(n))),
    ]
    .boxed()
}

/// A transcript line as Claude Code writes them, or noise; maybe cut anywhere.
fn transcript_line(text: fn() -> BoxedStrategy<String>) -> impl Strategy<Value = Vec<u8>> {
    let whole = prop_oneof![
        (text(), any::<bool>()).prop_map(|(t, blocks)| {
            let content = if blocks { json!([{"type": "text", "text": t}]) } else { json!(t) };
            json!({"type": "user", "message": {"role": "user", "content": content}, "timestamp": "t1"})
        }),
        (0u8..3, text()).prop_map(|(id, t)| json!({"type": "assistant", "timestamp": "t2",
            "message": {"id": format!("m{id}"), "role": "assistant",
                "content": [{"type": "text", "text": t}, {"type": "tool_use", "name": "x"}]}})),
        text().prop_map(|t| json!({"type": "user", "isMeta": true, "message": {"content": t}})),
        text().prop_map(|t| json!({"type": "assistant", "isSidechain": true,
            "message": {"id": "s", "content": [{"type": "text", "text": t}]}})),
        text().prop_map(
            |t| json!({"type": "user", "message": {"content": [{"type": "tool_result", "content": t}]}})
        ),
        Just(json!({"type": "system", "content": "x"})),
        Just(json!({"type": "user", "message": {"content": 5}})),
        Just(json!({"type": "assistant", "message": null})),
        Just(json!([1, 2])),
    ]
    .prop_map(|v| v.to_string().into_bytes());
    let line = prop_oneof![
        8 => whole,
        1 => prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..80),
    ];
    (line, prop::option::of(any::<prop::sample::Index>())).prop_map(|(mut line, cut)| {
        if let Some(cut) = cut {
            line.truncate(cut.index(line.len() + 1));
        }
        line
    })
}

/// `last_messages` computed forwards: parse every line, join streamed assistant lines of
/// one message (the later one is an assistant line with the same id), keep the last `n`.
fn model_last_messages(bytes: &[u8], n: usize) -> Vec<(Role, String, Option<String>)> {
    let parsed: Vec<(Message, Option<String>)> = forward(bytes)
        .iter()
        .filter_map(|line| {
            let msg = parse_line(line)?;
            let v: Value = serde_json::from_slice(line).unwrap();
            Some((msg, v["message"]["id"].as_str().map(str::to_owned)))
        })
        .collect();
    let mut out: Vec<(Message, Option<String>)> = Vec::new();
    for (msg, id) in parsed.into_iter().rev() {
        if let Some((later, later_id)) = out.last_mut()
            && later.role == Role::Assistant
            && id.is_some()
            && *later_id == id
        {
            later.text = format!("{}\n{}", msg.text, later.text);
            later.timestamp = msg.timestamp;
            continue;
        }
        out.push((msg, id));
    }
    out.truncate(n);
    out.reverse();
    out.into_iter().map(|(m, _)| (m.role, m.text, m.timestamp)).collect()
}

fn check_last_messages(lines: &[Vec<u8>], nl: bool, n: usize) -> Result<(), TestCaseError> {
    let bytes = join(lines, nl);
    let f = file_with(&bytes);
    let got: Vec<_> = transcript::last_messages(f.path(), n)
        .unwrap()
        .into_iter()
        .map(|m| (m.role, m.text, m.timestamp))
        .collect();
    for (_, text, _) in &got {
        prop_assert!(!text.trim().is_empty());
    }
    prop_assert_eq!(got, model_last_messages(&bytes, n));
    let topic = transcript::last_topic(f.path()).unwrap();
    if let Some(prompt) = &topic.prompt {
        prop_assert_eq!(prompt.role, Role::User);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(150))]

    #[test]
    fn last_messages_of_block_sized_lines_match_a_forward_reading(
        lines in prop::collection::vec(transcript_line(large_text), 0..6),
        nl in any::<bool>(),
        n in 0usize..5,
    ) {
        check_last_messages(&lines, nl, n)?;
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn last_messages_match_a_forward_reading(
        lines in prop::collection::vec(transcript_line(small_text), 0..30),
        nl in any::<bool>(),
        n in 0usize..8,
    ) {
        check_last_messages(&lines, nl, n)?;
    }

    #[test]
    fn last_messages_never_fail_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4000), n in 0usize..5) {
        let f = file_with(&bytes);
        let got = transcript::last_messages(f.path(), n).unwrap();
        prop_assert!(got.len() <= n);
        transcript::last_topic(f.path()).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Keys, names, session ids.
// ---------------------------------------------------------------------------------------

/// The accepted set: SPEC's characters and length, and (beyond SPEC's wording) no leading
/// `-` and no `.` or `..` path part, so that no key or name looks like a flag or a path.
fn allowed(s: &str, slash_ok: bool) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LEN
        && s.chars().all(|c| c.is_ascii_alphanumeric() || ":._@-".contains(c) || (slash_ok && c == '/'))
        && !s.starts_with('-')
        && !s.split('/').any(|part| part == "." || part == "..")
}

fn candidate() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9:._@/-]{0,8}",
        "[A-Za-z0-9:._@/-]{190,210}",
        "(\\.{1,3}|[a-z]{1,2}|-[a-z]?)(/(\\.{1,3}|[a-z]{1,2}|)){0,4}",
        "[a-z:]{1,10}[ \\n\\t\\x00/;$`'\"\\\\*?]{1,2}[a-z]{0,5}",
        "\\PC{0,12}",
        any::<String>(),
    ]
}

fn check_error(err: &anyhow::Error, what: &str) -> Result<(), TestCaseError> {
    let text = format!("{err:#}");
    prop_assert!(text.contains(what), "{}", text);
    prop_assert!(!text.contains('\n') && !text.contains('\0'), "one printable line: {:?}", text);
    prop_assert!(text.chars().count() < 400, "short: {:?}", text);
    Ok(())
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn keys_are_accepted_exactly_in_the_documented_set(s in candidate()) {
        match Key::parse(&s) {
            Ok(key) => {
                prop_assert!(allowed(&s, true), "accepted {:?}", s);
                prop_assert_eq!(key.as_str(), s.as_str());
                let stem = file_stem(key.as_str());
                prop_assert!(stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                let back: Key = serde_json::from_value(json!(s)).unwrap();
                prop_assert_eq!(back, key);
            }
            Err(err) => {
                prop_assert!(!allowed(&s, true), "refused {:?}: {:#}", s, err);
                check_error(&err, "key")?;
                prop_assert!(serde_json::from_value::<Key>(json!(s)).is_err());
            }
        }
    }

    #[test]
    fn names_are_accepted_exactly_in_the_documented_set(s in candidate()) {
        match Name::parse(&s) {
            Ok(name) => {
                prop_assert!(allowed(&s, false), "accepted {:?}", s);
                prop_assert_eq!(name.as_str(), s.as_str());
            }
            Err(err) => {
                prop_assert!(!allowed(&s, false), "refused {:?}: {:#}", s, err);
                check_error(&err, "name")?;
            }
        }
    }

    #[test]
    fn distinct_keys_have_distinct_file_names(a in candidate(), b in candidate()) {
        prop_assume!(a != b);
        prop_assert_ne!(file_stem(&a), file_stem(&b));
    }

    #[test]
    fn session_ids_are_exactly_canonical_uuids(s in prop_oneof![
        "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        "[0-9a-fA-FgG{}:-]{30,40}",
        "[0-9a-f]{32}",
        "\\PC{0,40}",
    ]) {
        let canonical = s.len() == 36
            && s.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() });
        match SessionId::parse(&s) {
            Ok(id) => {
                prop_assert!(canonical, "accepted {:?}", s);
                prop_assert_eq!(id.as_str(), s.to_ascii_lowercase());
                prop_assert_eq!(SessionId::parse(id.as_str()).unwrap(), id.clone());
            }
            Err(err) => {
                prop_assert!(!canonical, "refused {:?}", s);
                check_error(&err, "session id")?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The hook input parser, through the binary.
// ---------------------------------------------------------------------------------------

fn hook_stdin() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![
        Just(json!("0b6f2d4e-1c2a-4b3d-9e8f-123456789abc")),
        "\\PC{0,40}".prop_map(Value::from),
        Just(json!("../../x")),
        Just(json!("-rf")),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        Just(json!({"a": [1]})),
    ];
    let path = prop_oneof![
        Just(json!("/tmp")),
        Just(json!("relative/dir")),
        Just(json!("../../etc")),
        "\\PC{0,20}".prop_map(Value::from),
        Just(json!(7)),
    ];
    let object = (id, path.clone(), path, prop::option::of("\\PC{0,10}"), any::<u8>()).prop_map(
        |(id, cwd, transcript, source, drop)| {
            let mut v = json!({"session_id": id, "cwd": cwd, "transcript_path": transcript,
                "hook_event_name": "SessionStart", "extra": {"nested": [null]}});
            if let Some(s) = source {
                v["source"] = json!(s);
            }
            for (bit, field) in ["session_id", "cwd", "transcript_path"].iter().enumerate() {
                if drop & (1 << bit) != 0 {
                    v.as_object_mut().unwrap().remove(*field);
                }
            }
            v.to_string().into_bytes()
        },
    );
    prop_oneof![
        3 => object.clone(),
        1 => (object, any::<prop::sample::Index>()).prop_map(|(mut b, i)| { b.truncate(i.index(b.len())); b }),
        1 => prop::collection::vec(any::<u8>(), 0..500),
    ]
}

proptest! {
    #![proptest_config(config(120))]

    #[test]
    fn any_hook_input_exits_0_with_at_most_one_line(stdin in hook_stdin(), hook in 0usize..4) {
        let hook = ["session-start", "prompt-submit", "stop", "session-end"][hook];
        let env = Env::new();
        let mut before = walk(env.root());
        before.sort();
        let out = env.run_stdin(&["hook", hook], &stdin);
        prop_assert_eq!(out.code, Some(0), "{}", out.stderr);
        prop_assert!(out.stdout.is_empty());
        prop_assert!(out.stderr.lines().count() <= 1, "{}", out.stderr);
        // Only a well-formed session id ever names a file.
        for entry in std::fs::read_dir(env.state().join("sessions")).into_iter().flatten() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let id = name.strip_suffix(".json").unwrap();
            prop_assert_eq!(id, "0b6f2d4e-1c2a-4b3d-9e8f-123456789abc");
        }
        // Nothing is written outside the state dir.
        let mut after: Vec<_> = walk(env.root()).into_iter().filter(|p| !p.starts_with(env.state())).collect();
        after.sort();
        prop_assert_eq!(&after, &before);
    }
}

// ---- branches of a transcript: after the correction, a resume follows the newest turn ----

/// A transcript of `nodes` (kind, parent index) with checkpoints naming earlier nodes after
/// some of them (`checkpoints[i]`: a checkpoint after node i names node `c`).
fn branchy_transcript(nodes: &[(u8, Option<usize>)], checkpoints: &[Option<usize>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &(kind, parent)) in nodes.iter().enumerate() {
        let kind = ["user", "assistant", "system", "attachment"][usize::from(kind % 4)];
        let mut line = json!({"type": kind, "uuid": format!("u{i}"), "parentUuid": parent.map(|p| format!("u{p}")),
            "isSidechain": false});
        if kind == "user" || kind == "assistant" {
            line["message"] =
                json!({"role": kind, "content": [{"type": "text", "text": format!("text {i}")}]});
        }
        writeln!(out, "{line}").unwrap();
        if let Some(Some(c)) = checkpoints.get(i) {
            let c = c % (i + 1);
            writeln!(
                out,
                "{}",
                json!({"type": "last-prompt", "leafUuid": format!("u{c}"), "sessionId": "s"})
            )
            .unwrap();
        }
    }
    out
}

/// The chain from `at` up, by the `parentUuid`s of the file's lines.
fn chain_of(lines: &[Value], at: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = Some(at.to_owned());
    while let Some(u) = at {
        if out.contains(&u) {
            break;
        }
        let line = lines.iter().rev().find(|l| l["uuid"] == u.as_str());
        out.push(u);
        at = line.and_then(|l| l["parentUuid"].as_str().map(str::to_owned));
    }
    out
}

/// Nodes (kind, parent) and the checkpoints after them (see [`branchy_transcript`]).
type Branchy = (Vec<(u8, Option<usize>)>, Vec<Option<usize>>);

fn branches_strategy() -> impl Strategy<Value = Branchy> {
    (1usize..40).prop_flat_map(|n| {
        let nodes = (0..n)
            .map(|i| {
                let parent = if i == 0 {
                    Just(None).boxed()
                } else {
                    prop_oneof![3 => Just(Some(i - 1)), 1 => (0..i).prop_map(Some)].boxed()
                };
                (any::<u8>(), parent)
            })
            .collect::<Vec<_>>();
        let checkpoints = prop::collection::vec(prop::option::weighted(0.25, 0usize..64), n);
        (nodes, checkpoints)
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// Whatever the branches, after `point_resume_at` the newest checkpoint is on the branch
    /// of the newest turn (it names that turn, a descendant, or an ancestor of it); and when
    /// it writes nothing, that held already or there was no checkpoint.
    #[test]
    fn after_the_correction_the_newest_checkpoint_is_on_the_newest_turns_branch(
        (nodes, checkpoints) in branches_strategy()
    ) {
        use clawsess::transcript::branches::{self, Reach};
        let f = file_with(&branchy_transcript(&nodes, &checkpoints));
        let found = branches::read(f.path(), Reach::RESUME, "").unwrap();
        branches::point_resume_at(f.path(), "s", &found).unwrap();
        let lines: Vec<Value> = std::fs::read_to_string(f.path()).unwrap().lines()
            .map(|l| serde_json::from_str(l).unwrap()).collect();
        let Some(newest) = lines.iter().rev().find(|l| l["type"] == "user" || l["type"] == "assistant") else {
            return Ok(());
        };
        let newest = newest["uuid"].as_str().unwrap();
        let Some(checkpoint) = lines.iter().rev().find(|l| l["type"] == "last-prompt") else {
            prop_assert!(!found.stale_checkpoint);
            return Ok(());
        };
        let named = checkpoint["leafUuid"].as_str().unwrap();
        let on_branch = chain_of(&lines, named).iter().any(|u| u == newest)
            || chain_of(&lines, newest).iter().any(|u| u == named);
        prop_assert!(on_branch, "checkpoint {named}, newest turn {newest}, found {found:?}");
        let again = branches::read(f.path(), Reach::RESUME, "").unwrap();
        prop_assert!(!again.stale_checkpoint);
    }

    /// The branch reader never fails or panics on arbitrary bytes.
    #[test]
    fn the_branch_reader_never_fails_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4000)) {
        use clawsess::transcript::branches::{self, Reach};
        let f = file_with(&bytes);
        branches::read(f.path(), Reach::RESUME, "x").unwrap();
        branches::read(f.path(), Reach::EXIT, "").unwrap();
    }
}
