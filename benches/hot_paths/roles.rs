//! What this executable does when `ROLE_ENV` names a role instead of benchmarking.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use crate::data::encode_cwd;

/// The stand-in `claude -p` as `run` drives it (`--input-format stream-json`; plain
/// `--output-format json` too): reads the prompt, appends the turn to the session's
/// transcript (so the next `run` can resume it), prints the result at once.
pub fn stand_in_claude() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    let id = args
        .windows(2)
        .find(|w| w[0] == "--resume" || w[0] == "--session-id")
        .map(|w| w[1].clone())
        .unwrap_or_default();
    let stream = args.windows(2).any(|w| w[0] == "--input-format" && w[1] == "stream-json");
    let mut prompt = String::new();
    if stream {
        // One user message on a line; stdin stays open until the result is out.
        let _ = std::io::stdin().read_line(&mut prompt);
        let message: serde_json::Value = serde_json::from_str(&prompt).unwrap_or_default();
        prompt = message["message"]["content"].as_str().unwrap_or_default().to_owned();
        println!("{}", serde_json::json!({"type": "system", "subtype": "init"}));
    } else {
        let _ = std::io::stdin().read_to_string(&mut prompt);
    }
    if let (Some(dir), Ok(cwd)) = (std::env::var_os("CLAUDE_CONFIG_DIR"), std::env::current_dir()) {
        let path = Path::new(&dir).join("projects").join(encode_cwd(&cwd)).join(format!("{id}.jsonl"));
        let _ = fs::create_dir_all(path.parent().unwrap());
        let turn = format!(
            "{}\n{}\n",
            serde_json::json!({"type": "user", "sessionId": id, "message": {"role": "user", "content": prompt}}),
            serde_json::json!({"type": "assistant", "sessionId": id, "message": {"id": "msg_bench", "role": "assistant", "content": [{"type": "text", "text": "ok"}]}})
        );
        let appended = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|mut f| f.write_all(turn.as_bytes()));
        if let Err(err) = appended {
            eprintln!("stand-in claude: {}: {err}", path.display());
            return 1;
        }
    }
    println!(
        "{}",
        serde_json::json!({"type": "result", "subtype": "success", "is_error": false,
            "session_id": id, "result": "ok"})
    );
    0
}

/// Reads `list --json` on stdin and prints how many entries it has and how many of them
/// are distinct ids of `$CLAWSESS_BENCH_IDS`.
pub fn check_list() -> i32 {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).unwrap();
    let list: Vec<serde_json::Value> = match serde_json::from_str(&text) {
        Ok(list) => list,
        Err(err) => {
            println!("not a JSON array: {err}");
            return 1;
        }
    };
    let want: HashSet<String> = fs::read_to_string(std::env::var("CLAWSESS_BENCH_IDS").unwrap())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let got: HashSet<&str> = list.iter().filter_map(|e| e["session_id"].as_str()).collect();
    let found = got.iter().filter(|id| want.contains(**id)).count();
    println!("{} {found}", list.len());
    0
}
