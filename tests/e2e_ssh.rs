//! Sessions on other machines over a real OpenSSH server (tests/support/sshd.rs): the
//! "remote" is this machine with another HOME, its own Claude Code config, clawsess state
//! and stand-in API; the caller reaches it with `CLAWSESS_SSH="ssh -F <config>"`, host key
//! checking on. Assertions are on what each side's stand-in API (the model) received.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::real_claude::{ClaudeHome, run_with_stdin};
use support::sshd::{ALIAS, Sshd};

const T: Duration = Duration::from_secs(180);

/// A local home, a remote home, and sshd serving the remote one.
struct Two {
    local: ClaudeHome,
    remote: ClaudeHome,
    sshd: Sshd,
}

impl Two {
    fn new() -> Two {
        let local = ClaudeHome::new();
        local.install_clawsess();
        let remote = ClaudeHome::new();
        remote.install_clawsess();
        let mut probe = Command::new("true");
        remote.apply_env(&mut probe);
        let env: Vec<(String, String)> = probe
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
            .collect();
        let sshd = Sshd::start(&env);
        let two = Two { local, remote, sshd };
        two.ok(&["hosts", "add", "box", ALIAS]);
        two
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.local.clawsess_cmd(args);
        cmd.env("CLAWSESS_SSH", self.sshd.ssh_command());
        cmd
    }

    fn run(&self, args: &[&str], stdin: &str) -> std::process::Output {
        run_with_stdin(&mut self.cmd(args), stdin, T)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, "");
        assert!(out.status.success(), "clawsess {args:?}: {}\nsshd: {}", text(&out), self.sshd.log());
        String::from_utf8(out.stdout).unwrap()
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn hosts_add_check_list_and_remove() {
    let two = Two::new();
    let list = two.ok(&["hosts", "list"]);
    assert!(list.contains("box") && list.contains(ALIAS), "{list}");
    let check = two.ok(&["hosts", "check", "--json"]);
    let check: Value = serde_json::from_str(&check).unwrap();
    assert_eq!(check[0]["reachable"], true, "{check:#}");
    assert_eq!(check[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(check[0]["protocol"], 1);
    // The control socket lives in the private state dir.
    let ssh_dir = two.local.home().join(".local/share/clawsess/ssh");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&ssh_dir).unwrap().permissions().mode() & 0o777, 0o700);

    for bad in ["-oProxyCommand=touch /tmp/x", "a b", "x;y"] {
        let out = two.run(&["hosts", "add", "evil", "--", bad], "");
        assert_eq!(out.status.code(), Some(1), "{bad:?} accepted: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("ssh destination"), "{}", text(&out));
    }
    two.ok(&["hosts", "remove", "box"]);
    assert!(!two.ok(&["hosts", "list"]).contains(ALIAS));
}

