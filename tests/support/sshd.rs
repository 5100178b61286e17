//! A real OpenSSH server on 127.0.0.1 for the ssh tests: Debian's openssh-server (installed
//! here when missing; the tests run as root), a generated host key and client key, keys and
//! known_hosts in a throw-away dir, host key checking on. The "remote" machine is this one
//! with another HOME: sshd's `SetEnv` gives every command it runs that HOME's environment
//! (PATH with its clawsess and claude first, the stand-in API). Dropping it stops sshd.
#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// The alias the client's ssh config gives the server.
pub const ALIAS: &str = "clawsess-test-host";

pub struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

/// Installs openssh-server once when `/usr/sbin/sshd` is missing.
fn ensure_installed() {
    static ONCE: Mutex<()> = Mutex::new(());
    let _held = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new(SSHD).exists() {
        return;
    }
    assert!(unsafe { libc::geteuid() } == 0, "openssh-server is missing and the tests are not root");
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server",
        ])
        .status()
        .expect("run apt-get");
    assert!(ok.success() && Path::new(SSHD).exists(), "could not install openssh-server");
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "clawsess-test", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
}

impl Sshd {
    /// Starts sshd; every command it runs gets `env` (on top of sshd's own HOME, PATH, ...).
    pub fn start(env: &[(String, String)]) -> Sshd {
        ensure_installed();
        let dir = tempfile::Builder::new().prefix("clawsess-sshd-").tempdir().expect("sshd dir");
        let d = fs::canonicalize(dir.path()).unwrap();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        fs::create_dir_all("/run/sshd").expect("sshd's privilege separation dir");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let user =
            if unsafe { libc::geteuid() } == 0 { "root".to_owned() } else { std::env::var("USER").unwrap() };
        let mut config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\n\
             AuthorizedKeysFile {ak}\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nAllowUsers {user}\nLogLevel ERROR\n\
             MaxSessions 50\nMaxStartups 50\n",
            hk = d.join("host_key").display(),
            pid = d.join("sshd.pid").display(),
            ak = d.join("authorized_keys").display(),
        );
        // One SetEnv line: sshd uses the first one only.
        if !env.is_empty() {
            config.push_str("SetEnv");
            for (k, v) in env {
                assert!(!v.contains(['"', '\n']), "{k}={v}");
                config.push_str(&format!(" \"{k}={v}\""));
            }
            config.push('\n');
        }
        fs::write(d.join("sshd_config"), config).unwrap();
        let host_pub = fs::read_to_string(d.join("host_key.pub")).unwrap();
        let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {}\n", host_pub.join(" "))).unwrap();
        fs::write(
            d.join("ssh_config"),
            format!(
                "Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {ck}\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  \
                 StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                ck = d.join("client_key").display(),
                kh = d.join("known_hosts").display(),
            ),
        )
        .unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .expect("start sshd");
        let mut sshd = Sshd { dir, child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sshd.child.try_wait() {
                panic!("sshd ended ({status}): {}", sshd.log());
            }
            assert!(Instant::now() < deadline, "sshd did not listen: {}", sshd.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        sshd
    }

    pub fn dir(&self) -> PathBuf {
        fs::canonicalize(self.dir.path()).unwrap()
    }

    /// What sshd wrote on stderr.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The value of `CLAWSESS_SSH` for a client: ssh with this server's config.
    pub fn ssh_command(&self) -> String {
        format!("ssh -F {}", self.dir().join("ssh_config").display())
    }

    /// Stops sshd now (the host goes away); connections in progress are cut.
    pub fn stop(&mut self) {
        // sshd and everything below it: open connections (and the clients' control masters
        // on them) are cut too, and what they ran ends, as when a machine goes away.
        let pid = self.child.id() as i32;
        let mut doomed = descendants(pid);
        doomed.push(pid);
        for p in doomed {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Sshd {
    /// Freezes (SIGSTOP) or thaws (SIGCONT) every sshd process serving a connection, as a
    /// link that stops carrying anything: the listener still takes new connections. The
    /// pids signalled.
    pub fn freeze_connections(&self, freeze: bool) -> Vec<i32> {
        let signal = if freeze { libc::SIGSTOP } else { libc::SIGCONT };
        let serving: Vec<i32> = descendants(self.child.id() as i32)
            .into_iter()
            .filter(|p| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.starts_with("sshd")))
            .collect();
        for &p in &serving {
            unsafe { libc::kill(p, signal) };
        }
        serving
    }
}

/// Every process below `pid` (sshd's per-connection processes call setsid, so a process
/// group does not hold them): read from /proc.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let ppid: Option<i32> =
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            parent_of.push((p, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found.remove(0);
    found
}
