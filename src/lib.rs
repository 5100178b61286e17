//! clawsess: one Claude Code conversation, many surfaces.
//!
//! The library behind the `clawsess` binary, for a Rust bot that wants to resolve keys,
//! read transcripts or keep the store without spawning the binary.

pub mod claude;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod doctor;
pub mod exit;
pub mod handoff;
pub mod ident;
pub mod install;
pub mod list;
pub mod live;
pub mod mcp;
pub mod perms;
pub mod probe;
pub mod prune;
pub mod remote;
pub mod resolve;
pub mod run;
pub mod serve_ssh;
pub mod store;
pub mod sweep;
pub mod sys;
pub mod topic;
pub mod transcript;
pub mod turn;
pub mod warm;
