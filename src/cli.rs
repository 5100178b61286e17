//! Every command-line type of clawsess, so the whole interface reads on one screen.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// One Claude Code conversation, many surfaces.
///
/// Attach a terminal's Claude Code session to chat bots and scripts, keep one durable
/// session per chat or thread, and never let two surfaces answer one session at once.
#[derive(Debug, Parser)]
#[command(name = "clawsess", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Attach a surface key (or, without --key, every key) to a session
    Attach(Attach),
    /// Remove a key's attachment (or the global one)
    Detach(Detach),
    /// Print the session a key resolves to
    Current(Current),
    /// List recorded sessions, most recently active first
    List(List),
    /// Show the last messages of a session, or (--topic) where its conversation stands
    Show(Show),
    /// Give a session a stable name
    Name(NameCmd),
    /// Run one turn of a key's session through `claude -p`
    Run(Run),
    /// Wait in line for a key's turn for a claude you start yourself (an Agent SDK bot's)
    Queue(Queue),
    /// Answer a permission request, question or plan of `run --ask`
    Answer(Answer),
    /// Interrupt the run turn in progress on a session
    Stop(Stop),
    /// End warm sessions' claude processes now (`run --warm`)
    Cool(Cool),
    /// A session's model, turns, tokens, context used, busy and warm state
    Status(Status),
    /// Serve the cross-session tools to Claude Code (MCP on stdio)
    Mcp(Mcp),
    /// Drop a key's own session and attachment (thread deleted or archived)
    Forget(Forget),
    /// Keep a key's or a session's settings for its runs: model, effort, cwd, ...
    Set(Set),
    /// Print the settings kept for a key or a session
    Get(Get),
    /// Drop settings of a key or a session (all of them without NAME)
    Unset(Unset),
    /// Print what is in force (config file, env, defaults) and where each value comes from
    Config(ConfigCmd),
    /// Record sessions from Claude Code's transcript store that the hook never saw
    Import(Import),
    /// Drop records whose transcript is gone
    Prune(Prune),
    /// Hook clawsess into Claude Code (settings.json hooks and /attach, /detach, /sessions)
    Install(Install),
    /// Remove exactly what `install` added
    Uninstall(Install),
    /// Check the installation and the state dir
    Doctor(Doctor),
    /// Print shell completions
    Completions(Completions),
    /// Print a man page (roff), or write them all with --dir
    Man(Man),
    /// Claude Code hooks (called by Claude Code, reading the hook JSON on stdin)
    #[command(subcommand)]
    Hook(Hook),
    /// The keeper of a warm session's claude (started by `run --warm`)
    #[command(hide = true)]
    Keep(Keep),
    /// Other machines whose sessions are reached over ssh: add, list, remove, check
    #[command(subcommand)]
    Hosts(Hosts),
    /// Serve one request from another machine's clawsess (run by its ssh; reads JSON on stdin)
    #[command(hide = true)]
    ServeSsh(ServeSsh),
}

#[derive(Debug, Subcommand)]
pub enum Hosts {
    /// Remember a machine: NAME (letters, digits, - _) and its ssh destination
    Add(HostsAdd),
    /// Print the machines clawsess knows
    List(HostsJson),
    /// Forget a machine (and the keys that ran there)
    Remove(HostsRemove),
    /// Reach each machine (or NAME) over ssh and print its clawsess version
    Check(HostsCheck),
}

#[derive(Debug, Args)]
pub struct HostsAdd {
    /// The name sessions there go by (`NAME:ID`)
    pub name: String,
    /// The ssh destination: [user@]host[:port] or a ~/.ssh/config alias
    pub dest: String,
    /// The clawsess command there [default: clawsess on its PATH]
    #[arg(long, value_name = "PATH")]
    pub clawsess: Option<String>,
}

#[derive(Debug, Args)]
pub struct HostsJson {
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HostsRemove {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct HostsCheck {
    /// Check only this machine
    pub name: Option<String>,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeSsh {
    /// The protocol the caller speaks
    #[arg(long)]
    pub protocol: u32,
}

#[derive(Debug, Subcommand)]
pub enum Hook {
    /// SessionStart: record the session
    SessionStart,
    /// UserPromptSubmit: mark the terminal busy, refuse while a bot's turn runs, catch up
    PromptSubmit,
    /// Stop: the terminal's turn is over
    Stop,
    /// PreCompact: refuse to compact a conversation this process is behind on
    PreCompact,
    /// SessionEnd: the terminal is gone
    SessionEnd,
}

#[derive(Debug, Args)]
pub struct KeyArg {
    /// Surface key, such as telegram:123456 [default: default]
    #[arg(long, short)]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
pub struct Attach {
    /// Session id, unique id prefix (4+ chars) or name [default: this Claude Code session,
    /// else the most recent one a person started]
    pub session: Option<String>,
    /// Attach only this key; without it the attachment is global
    #[arg(long, short)]
    pub key: Option<String>,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Detach {
    /// Detach only this key; without it the global attachment goes
    #[arg(long, short)]
    pub key: Option<String>,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Current {
    #[command(flatten)]
    pub key: KeyArg,
    /// Print one JSON object: session_id, key, via
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct List {
    /// Print a JSON array
    #[arg(long)]
    pub json: bool,
    /// Show at most N sessions
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<usize>,
    /// Also every host's sessions (`clawsess hosts`), written NAME:ID
    #[arg(long, conflicts_with = "host")]
    pub all: bool,
    /// Only the sessions on host NAME
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct Show {
    /// Session id, unique id prefix or name
    pub session: String,
    /// How many messages (at most 100000)
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub n: u32,
    /// The latest topic instead of messages: its prompts, what was done (files edited,
    /// commands run), the last reply, and which surface spoke last
    #[arg(long, conflicts_with = "n")]
    pub topic: bool,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NameCmd {
    /// Session id, unique id prefix or current name
    pub session: String,
    /// The new name
    pub name: String,
}

/// Which session a key's turn is for (the key's own, --session or --new, a fresh own one
/// after --idle-reset), where a new one works, and how long to wait while another surface
/// answers it: `run`'s and `queue`'s.
#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub key: KeyArg,
    /// Use this session (id, prefix or name) instead of the key's
    #[arg(long, short, conflicts_with = "new")]
    pub session: Option<String>,
    /// Start a new session and make it the key's own
    #[arg(long)]
    pub new: bool,
    /// Working directory of a new session [default: the current dir]
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Seconds to wait while another surface answers the session; 0 fails at once
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = crate::sys::parse_wait)]
    pub wait: std::time::Duration,
    /// Start a new own session when the key's session has been idle longer than this
    /// (e.g. 30m, 12h, 7d), instead of the config file's reset policies
    /// [env: CLAWSESS_IDLE_RESET]
    #[arg(long, value_name = "DURATION", value_parser = crate::sys::parse_duration)]
    pub idle_reset: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct Run {
    #[command(flatten)]
    pub target: Target,
    /// Run on host NAME (`clawsess hosts`); the key's turns run there from now on
    #[arg(long, value_name = "NAME", conflicts_with = "session")]
    pub host: Option<String>,
    /// Let a prompt that starts with `/` run as a Claude Code slash command; by default it
    /// is sent as text, so a chat user cannot run /attach or other commands through a bot
    #[arg(long)]
    pub allow_slash: bool,
    /// Print one JSON object with session_id, key, result, is_error and claude's fields
    #[arg(long)]
    pub json: bool,
    /// Print one JSON object per line as the turn goes: session, text, tool, permission,
    /// question, plan events, and last the result object (with "type": "result")
    #[arg(long, conflicts_with = "json")]
    pub stream: bool,
    /// Put tool calls that need permission, Claude's questions (AskUserQuestion) and plans
    /// (leaving plan mode) to the caller as permission, question and plan events, answered
    /// with `clawsess answer` (needs --stream)
    #[arg(long, requires = "stream")]
    pub ask: bool,
    /// Seconds a permission request, question or plan waits for an answer before it is
    /// denied
    #[arg(long, value_name = "SECS", default_value = "300", requires = "ask", value_parser = crate::sys::parse_wait)]
    pub ask_timeout: std::time::Duration,
    /// Keep claude running for this long after the turn (e.g. 10m), so that the session's
    /// next run hands it the prompt instead of starting Claude Code; 0 or off: not
    /// [env: CLAWSESS_WARM]
    #[arg(long, value_name = "DURATION", value_parser = crate::sys::parse_duration_or_off)]
    pub warm: Option<std::time::Duration>,
    /// If a turn is in progress on the session and clawsess drives it (a `run`'s), put this
    /// message into that turn now (Claude reads it at its next step) and follow the turn to
    /// its end; a turn clawsess cannot reach (a terminal's) is waited for as without --steer
    #[arg(long, conflicts_with = "new")]
    pub steer: bool,
    /// Stop the turn in progress on the session (as `clawsess stop`) and run this message as
    /// the next turn, before any other waiting turn
    #[arg(long, conflicts_with_all = ["new", "steer"])]
    pub interrupt: bool,
    /// Send a picture with the prompt: PNG, JPEG, GIF or WebP, at most 5 MB (repeatable)
    #[arg(long = "image", value_name = "FILE")]
    pub images: Vec<PathBuf>,
    /// Pass one argument on to claude (repeatable: -A --model -A opus)
    #[arg(short = 'A', long = "claude-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub claude_args: Vec<String>,
    /// The claude executable [env: CLAWSESS_CLAUDE; default: claude on PATH]
    #[arg(long, value_name = "PATH")]
    pub claude: Option<PathBuf>,
    /// The prompt [default: read from stdin]; after `--` every word is text
    #[arg(trailing_var_arg = true, value_name = "PROMPT")]
    pub prompt: Vec<String>,
}

/// Waits in the session's queue as a run does, then holds the session for the claude the
/// caller starts with `CLAWSESS_CLAIM=<claim>` in its env, until that claude's prompt takes
/// the turn. Prints one JSON object per line: queued (position, behind), ready (session_id,
/// cwd, resume, claim), then claimed or released. Closing its stdin withdraws the claim.
#[derive(Debug, Args)]
pub struct Queue {
    #[command(flatten)]
    pub target: Target,
    /// Seconds the session is held for the claude once ready; if no claude's prompt takes
    /// the turn by then, it is let go
    #[arg(long, value_name = "SECS", default_value = "120", value_parser = crate::sys::parse_wait)]
    pub hold: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct Answer {
    /// The request_id of the permission, question or plan event
    pub request_id: String,
    /// A permission: let the tool call run, or not. A plan: approve it, or keep planning.
    /// A question: deny declines to answer it
    #[arg(required_unless_present_any = ["choice", "text"], conflicts_with_all = ["choice", "text"])]
    pub decision: Option<Decision>,
    /// A question's answer: an option's label (repeatable: one per question, several for a
    /// multi-select question)
    #[arg(long, value_name = "LABEL")]
    pub choice: Vec<String>,
    /// A question's answer in your own words (for every question no --choice answers); for
    /// a plan: what to change (Claude keeps planning). `-`: read it from stdin (a bot's way:
    /// chat text never on a command line)
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// Why (a denial's reason is given to the model). `-`: read it from stdin
    #[arg(long, value_name = "TEXT", requires = "decision")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Decision {
    Allow,
    Deny,
}

#[derive(Debug, Args)]
pub struct Stop {
    /// Stop the run of this key [default: default]
    #[arg(long, short, conflicts_with = "session")]
    pub key: Option<String>,
    /// Stop the run on this session (id, prefix or name)
    pub session: Option<String>,
    /// Seconds to wait for the run to end
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = crate::sys::parse_wait)]
    pub wait: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct Status {
    /// The session of this key [default: default]
    #[arg(long, short, conflicts_with = "session")]
    pub key: Option<String>,
    /// Session id, unique id prefix, name, or key:KEY
    pub session: Option<String>,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Mcp {
    /// Run a `reply: none` send to this session (internal: started by the server)
    #[arg(long, hide = true, requires = "from")]
    pub deliver: Option<String>,
    #[arg(long, hide = true)]
    pub from: Option<String>,
    #[arg(long, hide = true, default_value = "default")]
    pub mode: String,
    #[arg(long, hide = true, default_value = "600")]
    pub timeout: u64,
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub allow: Vec<String>,
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub deny: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Cool {
    /// End only this session's (id, prefix or name) [default: every warm session]
    pub session: Option<String>,
}

#[derive(Debug, Args)]
pub struct Keep {
    pub session: String,
    #[arg(long)]
    pub cwd: PathBuf,
    #[arg(long)]
    pub claude: PathBuf,
    #[arg(long)]
    pub key: String,
    #[arg(long)]
    pub idle_ms: u64,
    #[arg(long)]
    pub resume: bool,
    #[arg(long = "claude-arg", allow_hyphen_values = true)]
    pub claude_args: Vec<String>,
    /// The claude slot (`turn::cap`) the run handed over; the keeper leaves it when it ends
    #[arg(long)]
    pub slot: Option<String>,
    /// Start claude with its hooks even when clawsess's are the only ones (the turn has a
    /// note for the model that its prompt hook hands over)
    #[arg(long)]
    pub keep_hooks: bool,
}

/// Whose settings: `--key K`, or a SESSION (id, prefix or name); neither: the default key.
#[derive(Debug, Args)]
pub struct SettingsTarget {
    /// The settings of this surface key; they stay with it when its session resets
    #[arg(long, short)]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
#[command(override_usage = "clawsess set [--key K | SESSION] NAME=VALUE... [--json]")]
pub struct Set {
    #[command(flatten)]
    pub of: SettingsTarget,
    /// [SESSION] NAME=VALUE...: model, effort (low, medium, high, xhigh, max),
    /// permission_mode, cwd (of a key's new sessions), warm (e.g. 10m, off)
    #[arg(value_name = "NAME=VALUE", required = true)]
    pub args: Vec<String>,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(override_usage = "clawsess get [--key K | SESSION] [--json]")]
pub struct Get {
    #[command(flatten)]
    pub of: SettingsTarget,
    /// Session id, unique id prefix or name [default: the key's settings]
    #[arg(conflicts_with = "key")]
    pub session: Option<String>,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(override_usage = "clawsess unset [--key K | SESSION] [NAME...] [--json]")]
pub struct Unset {
    #[command(flatten)]
    pub of: SettingsTarget,
    /// [SESSION] [NAME...]: the settings to drop (model, effort, permission_mode, cwd,
    /// warm) [default: all]
    #[arg(value_name = "NAME")]
    pub args: Vec<String>,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConfigCmd {
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Forget {
    /// The key to forget
    #[arg(long, short)]
    pub key: String,
}

#[derive(Debug, Args)]
pub struct Import {
    /// Claude Code's config dir [default: $CLAUDE_CONFIG_DIR, else ~/.claude]
    #[arg(long, value_name = "DIR")]
    pub claude_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Prune {
    /// Say what would go, change nothing
    #[arg(long, conflicts_with = "auto")]
    pub dry_run: bool,
    /// Only if due (`prune_every`), and quietly, into the state dir's prune.log: what `run`
    /// starts by itself
    #[arg(long)]
    pub auto: bool,
}

#[derive(Debug, Args)]
pub struct Install {
    /// Claude Code's config dir [default: $CLAUDE_CONFIG_DIR, else ~/.claude]
    #[arg(long, value_name = "DIR")]
    pub claude_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = crate::claude::versions::help_text())]
pub struct Doctor {
    /// Claude Code's config dir [default: $CLAUDE_CONFIG_DIR, else ~/.claude]
    #[arg(long, value_name = "DIR")]
    pub claude_dir: Option<PathBuf>,
    /// Check instead that the installed Claude Code still does what clawsess relies on: runs it
    /// against a stand-in API on 127.0.0.1 (no network, no API key; a few seconds)
    #[arg(long)]
    pub probe: bool,
    /// One JSON document: the checks (with --probe, the probe's report)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Completions {
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

#[derive(Debug, Args)]
pub struct Man {
    /// The command whose page to print (`attach`, `hook stop`) [default: clawsess(1)]
    pub command: Vec<String>,
    /// Write every page (clawsess.1, clawsess-attach.1, ...) into DIR instead
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub dir: Option<PathBuf>,
}
