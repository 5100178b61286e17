"""What the reference bots (telegram_bot.py, discord_bot.py) share: settings parsing, the
one-time pairing code, the state file, the live progress message, and how a turn ends.
Standard library and clawsess_client.py only."""

import asyncio
import datetime
import json
import logging
import os
import secrets
import time

from clawsess_client import Busy, ClawsessError, tool_summary, topic_text

BUSY_TEXT = ("this conversation is busy in another place (terminal or another chat); "
             "try again in a moment")
STOPPING_TEXT = ("the bot is shutting down, so this message was not answered; "
                 "send it again in a moment")

log = logging.getLogger("bot")


def shorten(text, limit):
    return text if len(text) <= limit else text[:limit - 1] + "…"


def ids(env, name):
    """The comma-separated ids of setting NAME, as a set (empty when unset)."""
    raw = env.get(name, "").strip()
    try:
        return {int(x) for x in raw.split(",") if x.strip()} if raw else set()
    except ValueError:
        raise SystemExit(f"{name} must be comma-separated ids, not {raw!r}")


def number(env, name, default, minimum=0):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {raw!r}")
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}")
    return int(value) if value == int(value) else value


def read_json(path):
    """The state file's object; {} when there is none. Never overwrite a file we cannot
    read: (for Telegram) old messages would be answered again."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise SystemExit(f"cannot read the state file {path}: {e}; fix or remove it")


def write_json(path, data):
    """Writes DATA to PATH atomically, mode 0600 (in a 0700 dir)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Pairing:
    """The one-time code that makes the first user who sends it (in private) the owner: it
    works once, for TTL seconds, and five wrong tries void it."""

    def __init__(self, ttl):
        self.code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8))
        self.expires = time.monotonic() + ttl
        self.tries = 5

    def take(self, attempt):
        if self.code is None or time.monotonic() > self.expires:
            self.code = None
            return False
        if secrets.compare_digest(attempt.strip().upper().encode(), self.code.encode()):
            self.code = None
            return True
        self.tries -= 1
        if self.tries <= 0:
            log.warning("pairing: 5 wrong codes, the code is void (restart the bot for a new one)")
            self.code = None
        return False


class Progress:
    """A turn's "working..." message: sent at its first tool call, edited as more come (at
    most once per INTERVAL seconds, later when the platform asks to wait), and given its last
    state when the turn is over. The reply is a message of its own.

    SEND(text) sends it and returns a handle (None: not sent); EDIT(handle, text) edits it
    and returns the seconds to wait before the next edit (0: none)."""

    MAX_LINES = 25

    def __init__(self, send, edit, interval, limit):
        self.send, self.edit, self.interval, self.limit = send, edit, interval, limit
        self.header, self.lines = "⏳ Working…", []
        self.sent = self.shown = self.flusher = None
        self.next_edit, self.sleeping = 0.0, False

    def tool(self, name, tool_input):
        summary = tool_summary(tool_input)
        self.line(f"🔧 {name}" + (f": {summary}" if summary else ""))

    def text(self, text):
        if self.lines:  # before any tool call this may be the whole reply
            self.line("💬 " + shorten(" ".join(text.split()), 200))

    def line(self, line):
        self.lines.append(line)
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.ensure_future(self.flush())

    def render(self):
        lines = self.lines[-self.MAX_LINES:]
        skipped = len(self.lines) - len(lines)
        head = self.header + (f"\n… {skipped} earlier steps" if skipped else "")
        return shorten("\n".join([head, *lines]), self.limit)

    async def flush(self):
        """Shows what came, then what comes during the pause, until nothing new did."""
        while self.render() != self.shown:
            self.sleeping = True
            try:
                await asyncio.sleep(max(0.0, self.next_edit - time.monotonic()))
            finally:
                self.sleeping = False
            await self.push()

    async def push(self):
        text = self.render()
        if text == self.shown:
            return
        self.shown, self.next_edit = text, time.monotonic() + self.interval
        if self.sent is None:
            self.sent = await self.send(text)
            self.shown = text if self.sent is not None else None
        elif wait := await self.edit(self.sent, text):
            self.shown, self.next_edit = None, time.monotonic() + wait

    async def finish(self, header):
        if self.flusher is not None and not self.flusher.done():
            if self.sleeping:
                self.flusher.cancel()
            try:
                await self.flusher
            except asyncio.CancelledError:
                pass
        if self.lines:
            self.header = header
            await self.push()


NO_QUESTIONS_TEXT = ("this chat cannot show questions or plans as buttons yet: write the "
                     "question or the plan in your reply, and the person answers in the chat")


async def follow(key, turn, progress, ask):
    """Runs TURN (a clawsess_client Turn), showing its tools in PROGRESS and putting its
    permission events to ASK(event); returns what to tell the chat when it failed, or None."""
    try:
        async with turn:
            async for event in turn:
                if event.type == "tool":
                    progress.tool(event.tool, event.input)
                elif event.type == "text":
                    progress.text(event.text)
                elif event.type == "permission":
                    await ask(event)
                elif event.type in ("question", "plan"):
                    # No buttons for Claude's questions and plans in the bots yet: decline at
                    # once (rather than leave the turn waiting for --ask-timeout), and tell
                    # the model to ask in its reply instead.
                    await turn._client.answer(event.request_id, "deny", NO_QUESTIONS_TEXT)
    except Busy:
        return BUSY_TEXT
    except ClawsessError as e:
        log.warning("%s: clawsess run exited %s: %s", key, e.code, e.stderr.strip()[-2000:])
        return "⚠️ " + shorten(e.message, 600)
    return None


def ending(result, error, stopping):
    """How a turn ended: (the progress message's last header, the reply, answered). RESULT
    is the turn's Result (None when it failed), ERROR what `follow` returned."""
    if stopping and (result is None or result.interrupted):
        return "⏹ Stopped.", STOPPING_TEXT, False
    if result is not None and result.interrupted:
        return "⏹ Stopped.", "⏹ Stopped before it was done.", False
    if error is not None:
        return "⚠️ Ended with an error.", error, False
    reply = result.text
    if result.is_error:
        reply = "⚠️ " + (reply or "Claude Code reported an error")
    elif result.replaced_session and not result.reset:
        reply = "(The previous conversation could not be continued, so this is a new one.)\n\n" + reply
    if result.reset:
        reply = reset_note(result.reset) + "\n\n" + reply
    return "✔️ Done.", reply, True


def reset_note(reset):
    """What to tell the chat when its conversation was reset by policy: RESET is the run
    result's {"from": OLD SESSION, "why": "idle 72h"}."""
    old = str(reset.get("from") or "")[:8]
    why = str(reset.get("why") or "its reset policy")
    return (f"🔄 Started a new conversation ({why}); the old one is {old} "
            f"(/attach {old} goes back to it).")


# --- /model and /status ------------------------------------------------------------------

MODEL_USAGE = ("Usage: /model NAME (like opus, sonnet, claude-opus-4-1) sets the model of this "
               "{where}'s turns; /model alone shows it; /model default: Claude Code's default "
               "model; /model -: no model of its own.")

LABELS = {"model": "Model", "effort": "Effort", "permission_mode": "Permission mode",
          "cwd": "New sessions start in"}


def origin_text(entry, key):
    """Where a setting of `clawsess status --json` comes from, in a chat's words."""
    source = entry.get("from")
    if source == "key":
        return "set here with /model" if entry.get("key") == key else f"set for {entry.get('key')}"
    if source == "session":
        return f"set for session {str(entry.get('session') or '')[:8]}"
    if source == "env":
        return f"the bot's {entry.get('var')}"
    if source == "file":
        return f"config file line {entry.get('line')}"
    return str(source or "default")


def local_time(text):
    """An RFC 3339 time as the bot's local time, or TEXT when it does not parse."""
    try:
        at = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    return at.astimezone().strftime("%Y-%m-%d %H:%M %Z")


async def model_command(cs, key, arg, where="chat"):
    """/model [NAME | default | -]: sets, shows or unsets KEY's model (`clawsess set --key`);
    what to tell the chat."""
    arg = (arg or "").strip()
    try:
        if not arg:
            try:
                entry = ((await cs.status(key)).get("settings") or {}).get("model")
            except ClawsessError:  # no session yet: only the key's own settings count
                model = (await cs.get(key)).get("model")
                entry = {"value": model, "from": "key", "key": key} if model else None
            if entry is None:
                return (f"This {where} uses Claude Code's default model. "
                        "/model NAME picks one (like opus or sonnet).")
            if entry.get("value") == "default":
                return f"This {where} uses Claude Code's default model ({origin_text(entry, key)})."
            return (f"This {where}'s model: {entry.get('value')} ({origin_text(entry, key)}). "
                    "/model default goes back to Claude Code's default.")
        if arg == "-":
            await cs.unset(key, "model")
            return (f"OK: this {where} no longer picks a model: its conversation goes on with the "
                    "model it last used (new ones with Claude Code's default). /model default "
                    "switches it to the default now.")
        if arg == "default":
            # Claude Code's own name for its default model. Not an unset: Claude Code 2.1
            # resumes a conversation with the model it last used when given no --model.
            await cs.set(key, model="default")
            return f"OK: the next turns in this {where} use Claude Code's default model."
        if len(arg.split()) != 1:
            return MODEL_USAGE.format(where=where)
        model = (await cs.set(key, model=arg)).get("model", arg)
        log.info("%s: /model %s", key, model)
        return f"OK: the next turns in this {where} use {model}."
    except ClawsessError as e:
        return "⚠️ " + e.message


async def status_text(cs, key, fresh=False, where="chat"):
    """/status: the session KEY talks to, the settings its next turn gets and from where,
    when it resets next, and where its conversation stands (`clawsess status --key --json`)."""
    try:
        st = await cs.status(key)
    except ClawsessError as e:
        if "has no session" not in e.message:
            return "⚠️ " + e.message
        st = None
    lines = []
    if st is None:
        lines.append(f"This {where} has no conversation yet; your next message starts one.")
        try:
            model = (await cs.get(key)).get("model")
        except ClawsessError as e:
            model = None
            lines.append("⚠️ " + e.message)
        lines.append(f"Model: {model} (set here with /model)" if model else "Model: Claude Code's default")
    else:
        how = {"key": "attached", "global": "following the global attachment",
               "own": "its own conversation"}.get(st.get("via"), st.get("via") or "")
        sid, name = st.get("session_id"), st.get("name")
        lines.append(f"This {where} ({key}) talks to session {sid}" + (f" ({name})" if name else "")
                     + (f", {how}." if how else "."))
        settings = st.get("settings")
        if settings is None:
            lines.append("⚠️ Settings unknown: " + str(st.get("config_error") or ""))
        else:
            for name, label in LABELS.items():
                entry = settings.get(name)
                if entry is not None:
                    lines.append(f"{label}: {entry.get('value')} ({origin_text(entry, key)})")
                elif name == "model":
                    lines.append("Model: Claude Code's default")
        used = st.get("context_used")
        lines.append(f"Turns: {st.get('turns')}" + (f", context used: {used} tokens" if used else ""))
        if st.get("busy"):
            lines.append(f"Busy: answering {st.get('busy')}")
        reset = st.get("reset")
        if st.get("next_reset"):
            lines.append(f"Next reset: {local_time(st['next_reset'])} ({reset.get('mode') if reset else ''})")
        elif reset and st.get("via") != "own":
            lines.append(f"Resets: never (attached; the {reset.get('mode')} policy is for the {where}'s own conversation)")
        elif settings is not None:
            lines.append("Resets: never (no reset policy for this chat)")
    if fresh:
        lines.append("After /new: your next message starts a new conversation.")
    text = "\n".join(lines)
    if st is not None:
        try:
            text += "\n" + topic_text(await cs.topic(str(st.get("session_id"))))
        except ClawsessError as e:
            log.warning("%s: topic: %s", key, e.message)
    return text
