//! completions, man pages and --version.

use super::*;

#[test]
fn completions_man_and_version_print() {
    let w = World::new();
    for shell in ["bash", "zsh", "fish"] {
        w.cmd(&["completions", shell]).assert().success().stdout(predicate::str::contains("attach"));
    }
    w.cmd(&["man"]).assert().success().stdout(predicate::str::contains(".TH clawsess"));
    w.cmd(&["--version"]).assert().success().stdout(predicate::str::starts_with("clawsess 0."));
}

#[test]
fn man_writes_a_page_for_every_page_a_page_names() {
    let w = World::new();
    let dir = w.path("man1");
    w.cmd(&["man", "--dir", dir.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("man pages in"));
    let pages: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for page in ["clawsess.1", "clawsess-attach.1", "clawsess-run.1", "clawsess-hook-stop.1"] {
        assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("keep")), "hidden commands have no page: {pages:?}");
    // Every clawsess-NAME(1) a page names is there.
    for page in &pages {
        let text = fs::read_to_string(dir.join(page)).unwrap().replace("\\-", "-");
        for (at, _) in text.match_indices("(1)") {
            let start =
                text[..at].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).map_or(0, |i| i + 1);
            let named = &text[start..at];
            if named.starts_with("clawsess") {
                assert!(pages.contains(&format!("{named}.1")), "{page} names {named}(1), which has no page");
            }
        }
    }
    // One page on stdout; an unknown command is said.
    w.cmd(&["man", "attach"]).assert().success().stdout(predicate::str::contains(".TH clawsess-attach 1"));
    w.cmd(&["man", "hook", "stop"])
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH clawsess-hook-stop 1"));
    w.cmd(&["man", "keep"]).assert().code(1).stderr(predicate::str::contains("no command \"keep\""));
}
