//! `hosts.json`: the machines `clawsess hosts add` named, and which keys run there.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{FORMAT, Locked, Store, read_json};

/// One machine reached over ssh (`clawsess hosts add NAME DEST`). Checked when it is
/// added and again when it is read (`crate::remote::check_*`), so a hand-edited file can
/// never put an ssh option on a command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub name: String,
    /// The ssh destination: `[user@]host[:port]` or a `~/.ssh/config` alias.
    pub dest: String,
    /// The remote clawsess command [default: `clawsess` on the remote PATH].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clawsess: Option<String>,
    /// Unix ms when it was added.
    #[serde(default)]
    pub added: u64,
}

/// Everything clawsess knows about other machines.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostsFile {
    pub v: u32,
    #[serde(default)]
    pub hosts: Vec<HostEntry>,
    /// Key -> the host whose session it runs on (`attach HOST:SESSION --key K`,
    /// `run --host HOST`): its turns run there.
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    /// A permission request of a remote `run --ask` -> its host (so `answer` finds it).
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    /// The global attachment, when it names a session on a host (`attach NAME:SESSION`
    /// without `--key`); `global.json` is then empty. Every key that is not attached itself
    /// runs there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<RemoteGlobal>,
}

/// A global attachment to a session on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteGlobal {
    pub host: String,
    /// The session's full id there.
    pub session: String,
    /// Unix ms when it was made.
    pub at: u64,
}

impl RemoteGlobal {
    /// `NAME:ID`.
    pub fn named(&self) -> String {
        format!("{}:{}", self.host, self.session)
    }
}

impl super::files::Versioned for HostsFile {
    fn version(&self) -> Option<u32> {
        Some(self.v)
    }
}

impl HostsFile {
    pub fn host(&self, name: &str) -> Option<&HostEntry> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The keys whose turns run on host `name`.
    pub fn keys_on(&self, name: &str) -> Vec<&str> {
        self.keys.iter().filter(|(_, host)| *host == name).map(|(key, _)| key.as_str()).collect()
    }

    /// The global attachment, if it is to a session on host `name`.
    pub fn global_on(&self, name: &str) -> Option<&RemoteGlobal> {
        self.global.as_ref().filter(|g| g.host == name)
    }
}

impl Store {
    fn hosts_path(&self) -> std::path::PathBuf {
        self.dir().join("hosts.json")
    }

    /// The hosts file (empty when there is none).
    pub fn hosts(&self) -> Result<HostsFile> {
        Ok(read_json(&self.hosts_path())?.unwrap_or(HostsFile { v: FORMAT, ..HostsFile::default() }))
    }

    /// The dir of ssh's control sockets, created private (0700).
    pub fn ssh_dir(&self) -> Result<std::path::PathBuf> {
        let dir = self.dir().join("ssh");
        super::create_private_dir(&dir)?;
        Ok(dir)
    }
}

impl Locked<'_> {
    /// Writes the hosts file (read it through this guard first: read-modify-write).
    pub fn put_hosts(&self, hosts: &HostsFile) -> Result<()> {
        super::create_private_dir(self.dir())?;
        super::write_json(&self.hosts_path(), hosts, super::Durability::Full)
    }
}
