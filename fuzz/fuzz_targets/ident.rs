//! Key, name and session-id validation on arbitrary text: accepted exactly in the
//! documented set, refusals are one printable line.
#![no_main]

use clawsess::ident::{Key, MAX_LEN, Name, SessionId, file_stem};
use libfuzzer_sys::fuzz_target;

fn allowed(s: &str, slash_ok: bool) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LEN
        && s.chars().all(|c| c.is_ascii_alphanumeric() || ":._@-".contains(c) || (slash_ok && c == '/'))
        && !s.starts_with('-')
        && !s.split('/').any(|part| part == "." || part == "..")
}

fn one_line(err: anyhow::Error) {
    let text = format!("{err:#}");
    assert!(!text.contains('\n') && !text.contains('\0'), "{text:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match Key::parse(s) {
        Ok(k) => {
            assert!(allowed(s, true), "{s:?}");
            assert_eq!(file_stem(k.as_str()).len(), 32);
        }
        Err(e) => {
            assert!(!allowed(s, true), "{s:?}");
            one_line(e);
        }
    }
    match Name::parse(s) {
        Ok(_) => assert!(allowed(s, false), "{s:?}"),
        Err(e) => {
            assert!(!allowed(s, false), "{s:?}");
            one_line(e);
        }
    }
    let canonical = s.len() == 36
        && s.char_indices()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() });
    match SessionId::parse(s) {
        Ok(id) => {
            assert!(canonical, "{s:?}");
            assert_eq!(id.as_str(), s.to_ascii_lowercase());
        }
        Err(e) => {
            assert!(!canonical, "{s:?}");
            one_line(e);
        }
    }
});
