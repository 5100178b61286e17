//! The transcript tail reader on arbitrary files: `RevLines` gives the lines of a forward
//! split (an empty first line aside, see tests/properties.rs), the message readers never
//! fail or panic, and the branch reader's correction leaves no stale checkpoint. Run with `-max_len=300000` so that inputs cross 64 KiB blocks.
#![no_main]

use std::io::Write;

use clawsess::transcript::{self, RevLines};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile_in_tmp();
    file.0.write_all(data).unwrap();
    let path = &file.1;

    let mut lines = Vec::new();
    let mut rev = RevLines::open(path, u64::MAX).unwrap();
    while let Some(line) = rev.next_line().unwrap() {
        lines.push(line);
    }
    lines.reverse();
    let mut want: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if want[0].is_empty() {
        want.remove(0);
    }
    assert_eq!(lines, want);

    let n = data.first().map_or(3, |b| usize::from(b % 8));
    let msgs = transcript::last_messages(path, n).unwrap();
    assert!(msgs.len() <= n);
    assert!(msgs.iter().all(|m| !m.text.trim().is_empty()));
    transcript::last_topic(path).unwrap();
    let reach = transcript::branches::Reach::RESUME;
    let found = transcript::branches::read(path, reach, "[clawsess]").unwrap();
    transcript::branches::point_resume_at(path, "s", &found).unwrap();
    assert!(!transcript::branches::read(path, reach, "").unwrap().stale_checkpoint);
});

struct Temp(std::fs::File, std::path::PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.1);
    }
}

fn tempfile_in_tmp() -> Temp {
    let path = std::env::temp_dir().join(format!("clawsess-fuzz-{}.jsonl", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    Temp(file, path)
}
