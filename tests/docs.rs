//! The README and the pages under docs/ name tests, modules and files, and link to each other:
//! every one of them must exist, so a renamed test or a moved module fails here instead of
//! leaving a promise that points nowhere. Reads files only; builds and runs nothing.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The documentation a reader follows: the README, docs/*.md, examples/README.md.
fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages = vec![root.join("README.md"), root.join("examples/README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages.retain(|p| p.is_file());
    pages
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// Lines outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// The inline code spans of a line (`like this`).
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// `a_{b,c}_d` is `a_b_d` and `a_c_d` (one level, as the docs write a family of tests).
fn expand_braces(name: &str) -> Vec<String> {
    match (name.find('{'), name.find('}')) {
        (Some(open), Some(close)) if open < close => name[open + 1..close]
            .split(',')
            .flat_map(|alt| expand_braces(&format!("{}{alt}{}", &name[..open], &name[close + 1..])))
            .collect(),
        _ => vec![name.to_string()],
    }
}

fn is_rust_path(span: &str) -> bool {
    let mut parts = span.split("::");
    let first = parts.next().unwrap_or("");
    span.contains("::")
        && first.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && first.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_*{},".contains(c)))
}

/// Does `source` define an item called `name` (`foo`, or every `foo_*` for `foo_*`)?
fn defines(source: &str, name: &str) -> bool {
    if name == "*" {
        return true;
    }
    let (stem, prefix) = match name.strip_suffix('*') {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    ["fn ", "mod ", "struct ", "enum ", "const ", "static ", "type ", "trait "].iter().any(|kw| {
        let needle = format!("{kw}{stem}");
        source.match_indices(&needle).any(|(at, _)| {
            let before_ok = at == 0 || !source.as_bytes()[at - 1].is_ascii_alphanumeric();
            let next = source[at + needle.len()..].chars().next();
            let after_ok = prefix || !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            before_ok && after_ok
        })
    })
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Every .rs file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(rust_files(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The file of module `name` inside the module whose file is `parent` (`src/lib.rs` for the
/// crate root), if it has one.
fn module_file(parent: &Path, name: &str) -> Option<PathBuf> {
    let dir = match parent.file_name().and_then(|f| f.to_str()) {
        Some("mod.rs" | "lib.rs") => parent.parent().unwrap().to_path_buf(),
        _ => parent.with_extension(""),
    };
    [dir.join(format!("{name}.rs")), dir.join(name).join("mod.rs")].into_iter().find(|p| p.is_file())
}

/// Why a Rust path named in the docs does not exist, or None when it does (or when it is
/// none of ours, like `std::fs::File::lock`).
fn missing_rust_path(path: &str) -> Option<String> {
    let root = root();
    let segs: Vec<&str> = path.split("::").collect();
    let (lib, segs) = match segs[0] {
        "clawsess" => (true, &segs[1..]),
        _ => (false, &segs[..]),
    };
    let suite = root.join("tests").join(format!("{}.rs", segs[0]));
    let suite_dir = root.join("tests").join(segs[0]);
    if !lib && (suite.is_file() || suite_dir.join("main.rs").is_file()) {
        // A test binary (`tests/suite.rs`, or `tests/suite/main.rs` with a module a subject):
        // `suite::name`, or `suite::module::name`.
        let mut files = vec![suite];
        files.extend(rust_files(&suite_dir));
        let name = segs[segs.len() - 1];
        return (!files.iter().any(|f| defines(&read(f), name)))
            .then(|| format!("no test `{name}` in tests/{}", segs[0]));
    }
    let mut file = root.join("src/lib.rs");
    for (i, seg) in segs.iter().enumerate() {
        let last = i == segs.len() - 1;
        if *seg == "tests" {
            let tests = module_file(&file, "tests");
            let source = read(&file) + &tests.as_ref().map(|t| read(t)).unwrap_or_default();
            if !defines(&source, "tests") {
                return Some(format!("{} has no tests module", rel(&file)));
            }
            let name = segs.get(i + 1).copied().unwrap_or("*");
            return (!defines(&source, name)).then(|| format!("no test `{name}` in {}", rel(&file)));
        }
        match module_file(&file, seg) {
            Some(next) => file = next,
            None if i == 0 && !lib => return None, // not a path into this crate
            None if last => {
                return (!defines(&read(&file), seg)).then(|| format!("no `{seg}` in {}", rel(&file)));
            }
            None => return Some(format!("no module `{seg}` under {}", rel(&file))),
        }
    }
    None
}

/// Repo files the docs name by path (`src/live/wire.rs`, `examples/README.md`); templates with
/// a placeholder (`target/claude-code-VERSION/`, `turns/<id>.json`) are not files.
fn is_repo_path(span: &str) -> bool {
    const TOP: [&str; 10] = [
        "src/",
        "tests/",
        "examples/",
        "docs/",
        "benches/",
        "fuzz/",
        "hooks/",
        "commands/",
        ".ci/",
        ".claude-plugin/",
    ];
    (TOP.iter().any(|t| span.starts_with(t)) || ["install.sh", "test.sh", "Cargo.toml"].contains(&span))
        && span.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "/._-".contains(c))
        && !span.contains("..")
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    prose_lines(text)
        .into_iter()
        .filter_map(|(_, l)| l.strip_prefix('#').map(|h| anchor(h.trim_start_matches('#').trim())))
        .collect()
}

/// The targets of the inline links of a line: `[text](target)`.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .collect()
}

#[test]
fn every_test_and_module_the_docs_name_exists() {
    let mut named = 0;
    let mut wrong = Vec::new();
    for page in pages() {
        let text = read(&page);
        for (n, line) in prose_lines(&text) {
            for span in code_spans(line) {
                let span = span.trim_end_matches("()");
                if !is_rust_path(span) {
                    continue;
                }
                for path in expand_braces(span) {
                    named += 1;
                    if let Some(why) = missing_rust_path(&path) {
                        wrong.push(format!("{}:{n}: `{path}`: {why}", rel(&page)));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "the docs name what does not exist:\n{}", wrong.join("\n"));
    // The README's and docs/GUARANTEES.md's promises name well over a hundred tests; far fewer
    // found means this check stopped reading them.
    assert!(named > 100, "only {named} Rust paths found in the docs");
}

#[test]
fn every_file_the_docs_name_exists() {
    let mut named = 0;
    let mut wrong = Vec::new();
    for page in pages() {
        let text = read(&page);
        for (n, line) in prose_lines(&text) {
            for span in code_spans(line).into_iter().filter(|s| is_repo_path(s)) {
                named += 1;
                if !root().join(span).exists() {
                    wrong.push(format!("{}:{n}: `{span}`", rel(&page)));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "the docs name files that do not exist:\n{}", wrong.join("\n"));
    assert!(named > 10, "only {named} file paths found in the docs");
}

#[test]
fn every_link_between_the_docs_lands() {
    let mut linked = 0;
    let mut wrong = Vec::new();
    for page in pages() {
        let text = read(&page);
        for (n, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                linked += 1;
                let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
                let dest = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
                if !dest.exists() {
                    wrong.push(format!("{}:{n}: {target}: no such file", rel(&page)));
                } else if !fragment.is_empty() && !anchors(&read(&dest)).iter().any(|a| a == fragment) {
                    wrong.push(format!("{}:{n}: {target}: no heading #{fragment} there", rel(&page)));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "links that land nowhere:\n{}", wrong.join("\n"));
    assert!(linked > 10, "only {linked} links found in the docs");
}

#[test]
fn the_checks_read_names_as_the_docs_write_them() {
    assert_eq!(expand_braces("a_{b,c}_d"), ["a_b_d", "a_c_d"]);
    assert!(is_rust_path("turn::catchup::tests::*") && is_rust_path("e2e::a_b"));
    // Paths into other crates are not ours to check.
    assert!(is_rust_path("std::fs::File::lock") && missing_rust_path("std::fs::File::lock").is_none());
    assert!(!is_rust_path("cargo test --test e2e") && !is_rust_path("LiveTurn::run_warm"));
    assert_eq!(
        anchor("Warm sessions (`cargo bench --bench warm`)"),
        "warm-sessions-cargo-bench---bench-warm"
    );
    assert_eq!(
        anchor("Live turns: progress, approvals, stop, pictures"),
        "live-turns-progress-approvals-stop-pictures"
    );
    assert!(defines("fn rev_lines_agree() {}", "rev_lines_*") && !defines("fn rev_linesx() {}", "rev_lines"));
    assert!(
        missing_rust_path("turn::tests::catch_up_fits_claude_codes_limit_in_utf16_units_with_emoji_replies")
            .is_some()
    );
    assert!(
        missing_rust_path(
            "turn::catchup::tests::catch_up_fits_claude_codes_limit_in_utf16_units_with_emoji_replies"
        )
        .is_none()
    );
    assert!(missing_rust_path("e2e::no_such_test_anywhere").is_some());
    // A suite with a module a subject (tests/cli/main.rs): by its name alone or with its module.
    assert!(missing_rust_path("cli::two_runs_on_one_key_take_turns").is_none());
    assert!(missing_rust_path("cli::run::two_runs_on_one_key_take_turns").is_none());
    assert!(missing_rust_path("cli::no_such_test_anywhere").is_some());
    assert!(!is_repo_path("target/claude-code-VERSION/") && !is_repo_path("turns/<id>.json"));
}

/// The supported range is said in one place in the code (`src/claude/versions.rs`), and the docs say
/// the same range (`doctor` and `--help` read it from the code).
#[test]
fn the_docs_give_the_supported_range_the_code_has() {
    use clawsess::claude::versions::{NEWEST_TESTED, OLDEST_SUPPORTED};
    let range = format!("{OLDEST_SUPPORTED} to {NEWEST_TESTED}");
    let readme = read(&root().join("README.md"));
    assert!(
        readme.contains(&format!("Claude Code {range}")),
        "README.md does not say \"Claude Code {range}\""
    );
    let page = read(&root().join("docs/CLAUDE_CODE.md"));
    assert!(
        page.contains(&format!("**Supported: {range}.**")),
        "docs/CLAUDE_CODE.md does not say \"Supported: {range}.\""
    );
}
