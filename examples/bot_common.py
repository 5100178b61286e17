"""What the reference bots (telegram_bot.py, discord_bot.py) share: settings parsing, the
one-time pairing code, the state file, the live progress message, and how a turn ends.
Standard library and clawsess_client.py only."""

import asyncio
import collections
import datetime
import json
import logging
import os
import secrets
import time

from clawsess_client import Busy, ClawsessError, Event, tool_summary, topic_text

__all__ = ["Asked", "Line", "MidTurn", "Pairing", "Progress", "ending", "follow", "ids",
           "model_command", "number", "read_json", "status_text", "write_json"]

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
        self.header, self.lines = self.WORKING, []
        self.muted = False  # a steer's: the turn it went into shows its own progress
        self.sent = self.shown = self.flusher = None
        self.next_edit, self.sleeping = 0.0, False

    WORKING = "⏳ Working…"

    def tool(self, name, tool_input):
        summary = tool_summary(tool_input)
        self.line(f"🔧 {name}" + (f": {summary}" if summary else ""))

    def text(self, text):
        if self.lines:  # before any tool call this may be the whole reply
            self.line("💬 " + shorten(" ".join(text.split()), 200))

    def line(self, line):
        if self.muted:
            return
        self.lines.append(line)
        self.kick()

    def kick(self):
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.ensure_future(self.flush())

    def waiting(self, position, behind):
        """The turn waits for its conversation, answered elsewhere (a `queued` event)."""
        if not self.muted:
            self.header = (f"⏳ Waiting: #{position} in line for this conversation, "
                           f"which {behind or 'another place'} is answering now.")
            self.kick()

    def working(self):
        """The turn has its conversation now (a `session` event)."""
        if self.header != self.WORKING and not self.muted:
            self.header = self.WORKING
            if self.sent is not None:
                self.kick()

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
        if self.lines or self.sent is not None:
            self.header = header
            await self.push()


async def follow(key, turn, progress, ask, note=None):
    """Runs TURN (a clawsess_client Turn), showing its tools in PROGRESS, putting its
    permission, question and plan events to ASK(event) and its steer and interrupt events to
    NOTE(event); returns what to tell the chat when it failed, or None."""
    try:
        async with turn:
            async for event in turn:
                if event.type == "tool":
                    progress.tool(event.tool, event.input)
                elif event.type == "text":
                    progress.text(event.text)
                elif event.type in ("permission", "question", "plan"):
                    await ask(event)
                elif event.type == "queued":
                    progress.waiting(event.get("position"), event.get("behind"))
                elif event.type == "session":
                    progress.working()
                elif event.type in ("steer", "interrupt") and note is not None:
                    await note(event)
    except Busy:
        return BUSY_TEXT
    except ClawsessError as e:
        log.warning("%s: clawsess run exited %s: %s", key, e.code, e.stderr.strip()[-2000:])
        return "⚠️ " + shorten(e.message, 600)
    return None


def ending(result, error, stopping, interrupted_by=None):
    """How a turn ended: (the progress message's last header, the reply, answered). RESULT
    is the turn's Result (None when it failed), ERROR what `follow` returned; INTERRUPTED_BY
    the words for a message of the chat's that interrupted it (the now-prefix)."""
    if stopping and (result is None or result.interrupted):
        return "⏹ Stopped.", STOPPING_TEXT, False
    if result is not None and result.interrupted and interrupted_by:
        return "⏹ Interrupted.", f"⏹ Interrupted by {interrupted_by}: that message runs now.", False
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


# --- a message that arrives mid-turn --------------------------------------------------------


class Line:
    """Each key's messages that wait for, or run, a turn of their own: a message that finds
    some there is told its place. A message leaves the line when its Claude turn is over,
    before its reply is sent (it keeps the key's lock until the reply is out, so the replies
    stay in order): a message sent after the chat saw the reply is never told it waits."""

    def __init__(self):
        self.counts = collections.Counter()

    def join(self, key):
        """A place in KEY's line; its `ahead` is how many messages are before it."""
        return Place(self.counts, key)


class Place:
    """A message's place in a Line."""

    def __init__(self, counts, key):
        self.counts, self.key = counts, key
        self.ahead = counts[key]
        counts[key] += 1
        self.left = False

    def leave(self):
        """Out of the line (once; again does nothing)."""
        if not self.left:
            self.left = True
            self.counts[self.key] -= 1
            if not self.counts[self.key]:
                del self.counts[self.key]


class MidTurn:
    """How a chat message says what to do with the turn in progress: a message that starts
    with STEER (BOT_STEER_PREFIX, default "!") goes into it (`run --steer`), one that starts
    with NOW (BOT_NOW_PREFIX, default "/now") stops it and runs now (`run --interrupt`),
    anything else waits for its turn. An empty prefix turns that way off."""

    def __init__(self, env):
        self.steer = env.get("BOT_STEER_PREFIX", "!").strip()
        self.now = env.get("BOT_NOW_PREFIX", "/now").strip()
        if self.steer and self.steer == self.now:
            raise SystemExit("BOT_STEER_PREFIX and BOT_NOW_PREFIX must differ")

    def split(self, text, username=None):
        """("now" | "steer" | "queue", the message without its prefix)."""
        stripped = text.lstrip()
        if self.now:
            forms = [self.now] + ([f"{self.now}@{username}"] if username and self.now.startswith("/") else [])
            for form in sorted(forms, key=len, reverse=True):
                rest = stripped[len(form):]
                if stripped[:len(form)].lower() == form.lower() and (not rest or rest[0].isspace()):
                    return "now", rest.strip()
        if self.steer and stripped.startswith(self.steer):
            return "steer", stripped[len(self.steer):].strip()
        return "queue", text

    def usage(self, mode):
        if mode == "now":
            return (f"Usage: {self.now} TEXT stops the turn Claude is working on here and sends "
                    "TEXT now.")
        return f"Usage: {self.steer}TEXT sends TEXT into the turn Claude is working on here."

    def queued_text(self, ahead):
        """What a message that waits is told: AHEAD turns go before it (the running one too)."""
        more = f" and {ahead - 1} more message{'' if ahead == 2 else 's'}" if ahead > 1 else ""
        ways = []
        if self.steer:
            ways.append(f"with {self.steer} to send it into the running turn instead")
        if self.now:
            ways.append(f"with {self.now} to stop that turn and run yours now")
        tip = f" Start a message {' or '.join(ways)}." if ways else ""
        return f"⏳ Queued: #{ahead} in line. It runs after the turn in progress{more}.{tip}"

    def help_lines(self):
        lines = []
        if self.steer:
            lines.append(f"{self.steer}TEXT - while Claude works: send TEXT into its turn (it reads it at its next step)")
        if self.now:
            lines.append(f"{self.now} TEXT - while Claude works: stop its turn and send TEXT now")
        return lines


# --- Claude's permission requests, questions and plans, answered from the chat -------------

BUTTON_LABEL = 60  # characters of an option's label on a button


class Asked:
    """A permission request, question or plan of a turn, shown in a chat with buttons: its
    text, its buttons and, for a question, the options picked so far. HANDLE is the platform's
    message; ASKER the user whose message started the turn.

    Buttons are (label, data) with DATA: "allow:ID" / "deny:ID" for a permission and a plan
    (`clawsess answer ID allow|deny`, what a restarted bot understands too), "q:ID:Q:O" for
    option O of question Q, "q:ID:send" to send the picks of a multi-select question."""

    def __init__(self, event, key, asker=None):
        self.kind, self.key, self.asker = event.type, key, asker
        self.request_id = event.request_id or ""
        self.event = event
        self.questions = event.questions if event.type == "question" else []
        self.picked = [[] for _ in self.questions]
        self.handle = None
        self.at = time.time()
        self.text = self.render(event)

    def render(self, event):
        timeout = event.get("timeout_s")
        if self.kind == "permission":
            return (f"🔐 Claude wants to use {event.tool}:\n{tool_summary(event.input, 600)}"
                    f"\n\nAllow it? (No answer in {timeout} s: denied.)")
        if self.kind == "plan":
            return (f"📋 Claude's plan:\n\n{shorten(event.plan.strip(), 1500)}\n\nApprove it and Claude "
                    "carries it out; Keep planning, or reply with what to change, and it plans on. "
                    f"(No answer in {timeout} s: it keeps planning.)")
        lines = ["❓ Claude asks:" if len(self.questions) == 1 else "❓ Claude asks you:"]
        for n, q in enumerate(self.questions, 1):
            head = f"{q.get('header')}: " if q.get("header") else ""
            number = f"{n}. " if len(self.questions) > 1 else ""
            lines.append(f"\n{number}{head}{q.get('question', '')}"
                         + (" (pick one or more)" if q.get("multi") else ""))
            for option in self.options(q):
                about = f": {option['description']}" if option.get("description") else ""
                lines.append(f"• {option.get('label')}{about}")
        send = " then Send," if self.needs_send() else ""
        lines.append(f"\nTap {'an option' if len(self.questions) == 1 else 'an option for each'},{send} "
                     f"or reply with your own answer. (No answer in {timeout} s: declined.)")
        return shorten("\n".join(lines), 3500)

    @staticmethod
    def options(question):
        return [o for o in question.get("options") or [] if isinstance(o, dict) and o.get("label")]

    def needs_send(self):
        return len(self.questions) > 1 or any(q.get("multi") for q in self.questions)

    def buttons(self):
        """Rows of (label, data)."""
        rid = self.request_id
        if self.kind == "permission":
            return [[("✅ Allow", f"allow:{rid}"), ("❌ Deny", f"deny:{rid}")]]
        if self.kind == "plan":
            return [[("✅ Approve", f"allow:{rid}"), ("✏️ Keep planning", f"deny:{rid}")]]
        rows = []
        for qi, q in enumerate(self.questions):
            row = []
            for oi, option in enumerate(self.options(q)):
                mark = "✅ " if option["label"] in self.picked[qi] else ""
                number = f"{qi + 1}: " if len(self.questions) > 1 else ""
                row.append((shorten(f"{mark}{number}{option['label']}", BUTTON_LABEL), f"q:{rid}:{qi}:{oi}"))
            rows.append(row)
        if self.needs_send():
            rows.append([("📨 Send", f"q:{rid}:send")])
        return rows

    def pick(self, qi, oi):
        """A press on option OI of question QI: True when the answer is complete and goes now
        (a single question with one choice), else False (the buttons show the pick)."""
        try:
            question = self.questions[qi]
            label = self.options(question)[oi]["label"]
        except (IndexError, KeyError):
            return False
        picked = self.picked[qi]
        if question.get("multi"):
            (picked.remove if label in picked else picked.append)(label)
        else:
            picked[:] = [] if picked == [label] and self.needs_send() else [label]
        return not self.needs_send()

    def choices(self):
        return [label for labels in self.picked for label in labels]

    async def answer(self, cs, decision=None, text=None):
        """Sends the answer (DECISION "allow"/"deny"; else the picks and/or TEXT) to clawsess;
        the verdict to show under the message, and whether it was taken."""
        try:
            if decision is not None:
                await cs.answer(self.request_id, decision)
            else:
                await cs.answer(self.request_id, choices=self.choices(), text=text)
        except ClawsessError as e:
            return "⚠️ " + shorten(e.message, 500), False
        if self.kind == "permission":
            return ("✅ Allowed." if decision == "allow" else "❌ Denied."), True
        if self.kind == "plan":
            if decision == "allow":
                return "✅ Approved: Claude carries it out.", True
            return ("✏️ Sent back: " + shorten(text, 300) if text else "✏️ Keep planning."), True
        if decision == "deny":
            return "❌ Declined.", True
        said = ", ".join(self.choices()) + ("; " if self.choices() and text else "") + (text or "")
        return "✅ Answered: " + shorten(said, 500), True

    def unanswered(self):
        return {"permission": "⌛ Not answered: denied.", "plan": "⌛ Not answered: Claude kept planning.",
                "question": "⌛ Not answered: declined."}[self.kind]


class Asks(dict):
    """request_id -> Asked: the messages with buttons. The questions (what their buttons
    mean, and the options picked so far) are kept in the bot's state file through SAVE(), so
    a restarted bot still answers a press on one while its turn waits; permissions and plans
    need nothing kept (their buttons hold the request id and the decision)."""

    KEEP = 50  # questions kept at most (the newest)

    def __init__(self, save=lambda: None):
        super().__init__()
        self.save = save

    def __setitem__(self, rid, asked):
        super().__setitem__(rid, asked)
        if asked.kind == "question":
            self.save()

    def pop(self, rid, *default):
        asked = super().pop(rid, *default)
        if asked is not None and getattr(asked, "kind", None) == "question":
            self.save()
        return asked

    def saved(self):
        """The questions as the state file keeps them."""
        kept = [a for a in self.values() if a.kind == "question"][-self.KEEP:]
        return [{"event": a.event.data, "key": a.key, "asker": a.asker, "picked": a.picked, "at": a.at}
                for a in kept]

    def restore(self, entries, max_age):
        """The questions a state file kept, but for those asked over MAX_AGE seconds ago
        (their turns have given up on them)."""
        for entry in entries if isinstance(entries, list) else []:
            try:
                if time.time() - float(entry["at"]) > max_age:
                    continue
                asked = Asked(Event("question", dict(entry["event"])), str(entry["key"]), entry.get("asker"))
                picked = entry.get("picked") or []
                if len(picked) == len(asked.picked):
                    asked.picked = [[str(label) for label in labels] for labels in picked]
                asked.at = float(entry["at"])
            except (KeyError, TypeError, ValueError):
                continue
            if asked.request_id:
                super().__setitem__(asked.request_id, asked)


def decision_verdict(decision):
    """The verdict of an Allow / Deny press that the bot knows nothing more about (a button
    of its earlier run)."""
    return "✅ Allowed." if decision == "allow" else "❌ Denied."


def button_data(data):
    """A button's data: ("allow"|"deny", ID, None), ("q", ID, (Q, O) or "send"), or None."""
    kind, _, rest = (data or "").partition(":")
    if kind in ("allow", "deny") and rest:
        return kind, rest, None
    if kind == "q":
        rid, _, what = rest.partition(":")
        if what == "send":
            return "q", rid, "send"
        q, _, o = what.partition(":")
        if q.isdigit() and o.isdigit():
            return "q", rid, (int(q), int(o))
    return None


async def press(cs, asks, data):
    """A press (by a user allowed to answer) on a button of Asked's with DATA: answers it
    when that completes the answer. Returns (verdict, asked, state): state "closed" (answered,
    or not waiting any more: show the verdict under the message, no buttons), "picked" (an
    option of several marked: show ASKED's buttons again), "refused" (clawsess refused it:
    say the verdict to the presser only; the buttons stay)."""
    parsed = button_data(data)
    if parsed is None:
        return None, None, "refused"
    kind, rid, what = parsed
    asked = asks.get(rid)
    if kind in ("allow", "deny"):
        if asked is None:  # a button of the bot's earlier run: the id is all it needs
            try:
                await cs.answer(rid, kind)
                return decision_verdict(kind), None, "closed"
            except ClawsessError as e:
                return "⚠️ " + shorten(e.message, 500), None, "closed"
        verdict, ok = await asked.answer(cs, kind)
    else:
        if asked is None:
            return "⚠️ This question is not open any more (its turn is over).", None, "closed"
        if what != "send" and not asked.pick(*what):
            if isinstance(asks, Asks):
                asks.save()  # the picks so far survive a restart too
            return "Picked: " + (", ".join(asked.choices()) or "nothing"), asked, "picked"
        verdict, ok = await asked.answer(cs)
    if not ok:
        return verdict, asked, "refused"
    asks.pop(rid, None)
    return verdict, asked, "closed"


def open_question(asks, key):
    """The question or plan of KEY's turn that waits for an answer (the latest), or None."""
    found = [a for a in asks.values() if a.key == key and a.kind in ("question", "plan")]
    return found[-1] if found else None


async def answer_in_words(cs, asks, asked, text):
    """A chat message that answers ASKED (a question or plan) in words: (verdict, answered)."""
    verdict, ok = await asked.answer(cs, text=text)
    if ok:
        asks.pop(asked.request_id, None)
    return verdict, ok


async def chat_turn(bot, key, message, text, progress, *, mode="queue", images=(), fresh=False,
                    asker=None, place=None):
    """One turn of KEY for a chat MESSAGE, as both bots run it: MODE "queue" (a turn of its
    own; the caller holds the key's lock and PLACE, its place in the key's Line, left here when
    the Claude turn is over, before the reply), "steer" (into the turn in progress) or "now"
    (stop it and run this). Shows the tools in PROGRESS and the permission requests,
    questions and plans as buttons, and replies. BOT gives: cs, cfg (ask, ask_timeout, cwd,
    wait, warm, run_args), running {key: Turn}, side (a set of Turns), interrupted {key: the
    words of what interrupted its turn}, asks {request_id: Asked}, stopping, mid (MidTurn),
    reply(message, text) -> sent, show_ask(message, asked), close_ask(asked, verdict).
    Returns whether the turn answered (for /new)."""
    followed = False
    asked = []

    async def ask(event):
        if followed:
            return  # the turn it went into shows its own buttons
        a = Asked(event, key, asker)
        asked.append(a)
        bot.asks[a.request_id] = a
        await bot.show_ask(message, a)

    async def note(event):
        nonlocal followed
        if event.type == "steer" and event.get("into") == "turn":
            ours = event.get("key") == key and key in bot.running
            followed = ours
            progress.muted = ours
            where = "" if ours else f" (the turn of {event.get('key')}; its answer comes here too)"
            await bot.reply(message, f"↪️ Sent into the turn in progress{where}: Claude reads it at its next step.")
        elif event.type == "steer":
            await bot.reply(message, f"↪️ Not steered ({event.get('why')}): it runs as a message of its own.")
        elif event.type == "interrupt" and not event.get("stopped") and key in bot.running:
            await bot.reply(message, f"⏹ Nothing stopped ({event.get('why')}); this message goes next.")

    if mode == "now" and key in bot.running:
        bot.interrupted[key] = f"a {bot.mid.now} message"
    turn = bot.cs.stream(key, text, ask=bot.cfg.ask, ask_timeout=bot.cfg.ask_timeout, cwd=bot.cfg.cwd,
                         new=fresh and mode == "queue", wait=bot.cfg.wait, warm=bot.cfg.warm,
                         images=images, extra=bot.cfg.run_args, steer=mode == "steer",
                         interrupt=mode == "now")
    if mode == "queue":
        bot.running[key] = turn
    else:
        bot.side.add(turn)
    try:
        error = await follow(key, turn, progress, ask, note)
    finally:
        if mode == "queue":
            bot.running.pop(key, None)
        if place is not None:
            place.leave()
        bot.side.discard(turn)
        for a in asked:
            if bot.asks.pop(a.request_id, None) is not None:
                await bot.close_ask(a, a.unanswered())
    interrupted_by = bot.interrupted.pop(key, None) if mode == "queue" else None
    header, reply, answered = ending(turn.result, error, bot.stopping, interrupted_by)
    await progress.finish(header)
    if followed and error is None and not bot.stopping:
        return answered  # the turn it went into replies
    await bot.reply(message, reply)
    return answered
