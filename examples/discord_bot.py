#!/usr/bin/env python3
"""A Discord bot that talks to Claude Code through clawsess, on discord.py.

A channel is one clawsess key, discord:<guild>:<channel>, and each thread its own,
discord:<guild>:<channel>:<thread> (a DM: discord:dm:<channel>); threads run in parallel, the
messages of one key one after the other. Archiving a thread ends its warm claude; deleting it
forgets its key. Slash commands /attach /detach /new /sessions /status /stop; a turn's tools
show in one message edited as they come; Allow / Deny buttons for tool calls that need
permission; image attachments go to Claude; replies are split at 2,000 characters without
breaking a code block.

Closed by default: it answers only ALLOWED_USERS and its owner. With neither it logs a
one-time pairing code at start; `/pair CODE` in a DM with the bot makes that user the owner
(kept in BOT_STATE). In servers it hears allowed users only when they mention it or reply to
it. A stranger gets one refusal per channel and nothing runs. Allow / Deny: only the allowed
user who asked, or an owner.

Settings (environment):

  DISCORD_BOT_TOKEN   the bot's token (Developer Portal > your app > Bot; turn on the
                      Message Content intent there) (required)
  ALLOWED_USERS       comma-separated Discord user ids the bot obeys (besides its owner)
  BOT_PAIR_TTL        seconds the pairing code works (default 600)
  BOT_CWD             working directory of new sessions (default: the current dir)
  CLAWSESS            the clawsess executable (default: clawsess on PATH)
  BOT_STATE           state file: owners, pending /new (default
                      ~/.local/state/clawsess/discord-bot-<token hash>.json)
  BOT_WAIT            seconds a turn waits for a session busy elsewhere (default 60)
  BOT_MAX_PARALLEL    turns running at once (default 4)
  BOT_STOP_GRACE      seconds running turns may finish after SIGTERM/SIGINT (default 10)
  BOT_RUN_ARGS        extra `clawsess run` arguments, split like a shell (operator config)
  BOT_WARM            how long a key's claude stays up after its turn (default 10m; 0: off)
  BOT_ASK             1 (default): Allow / Deny buttons for tool calls; 0: they are denied
  BOT_ASK_TIMEOUT     seconds a permission request waits for a button (default 300)
  BOT_EDIT_INTERVAL   least seconds between two edits of a progress message (default 1.5)
  DISCORD_API_URL     REST API base (default https://discord.com/api/v10; tests: a stand-in)
  DISCORD_GATEWAY_URL gateway websocket (default wss://gateway.discord.gg/; tests: a stand-in)

Run: DISCORD_BOT_TOKEN=... python3 discord_bot.py   (then DM the bot /pair CODE from the log)
"""

import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
import shlex
import signal
import sys
import tempfile
import time
import weakref
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clawsess_client import Busy, Clawsess, ClawsessError, tool_summary, topic_text  # noqa: E402

DISCORD_LIMIT = 2000
IMAGE_LIMIT = 5 * 1024 * 1024
BUSY_TEXT = ("this conversation is busy in another place (terminal or another chat); "
             "try again in a moment")
STOPPING_TEXT = ("the bot is shutting down, so this message was not answered; "
                 "send it again in a moment")

log = logging.getLogger("discord_bot")


def shorten(text, limit):
    return text if len(text) <= limit else text[:limit - 1] + "…"


def split_message(text, limit=DISCORD_LIMIT):
    """TEXT in pieces of at most LIMIT characters, cut at a line break (else a space) in the
    second half of a piece. A code block cut in two is closed at the end of one piece and
    opened again, with its language, at the start of the next."""
    pieces, fence = [], None  # fence: the ``` line of the block open at the cut
    while True:
        head = fence + "\n" if fence else ""
        room = limit - len(head) - 4  # room for a closing "\n```"
        if len(head) + len(text) <= limit:
            piece, text = head + text, ""
        else:
            cut = text.rfind("\n", 0, room + 1)
            if cut < room // 2:
                cut = text.rfind(" ", 0, room + 1)
            if cut < room // 2:
                cut = room
            piece, text = head + text[:cut], text[cut:]
            text = text[1:] if text[:1] in ("\n", " ") else text
        open_fence = None
        for line in piece.split("\n"):
            if line.lstrip().startswith("```"):
                open_fence = None if open_fence else line.strip()
        if open_fence and text:
            piece += "\n```"
        if piece.strip():
            pieces.append(piece)
        fence = open_fence if text else None
        if not text:
            return pieces


# ---------------------------------------------------------------------------------------
# Settings and state (as telegram_bot.py's)


def ids(env, name):
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


class Config:
    def __init__(self, env):
        self.token = env.get("DISCORD_BOT_TOKEN", "").strip()
        if not self.token:
            raise SystemExit("DISCORD_BOT_TOKEN is not set (see --help)")
        try:
            self.clawsess = Clawsess(env.get("CLAWSESS", "clawsess"))
        except ClawsessError as e:
            raise SystemExit(f"{e} (set CLAWSESS, or run ./install.sh)")
        self.cwd = os.path.abspath(env.get("BOT_CWD") or os.getcwd())
        if not os.path.isdir(self.cwd):
            raise SystemExit(f"BOT_CWD {self.cwd} is not a directory")
        self.clawsess.cwd = self.cwd
        self.users = ids(env, "ALLOWED_USERS")
        self.pair_ttl = number(env, "BOT_PAIR_TTL", 600, 1)
        digest = hashlib.sha256(self.token.encode()).hexdigest()[:12]
        default = os.path.join(os.path.expanduser("~"), ".local", "state", "clawsess",
                               f"discord-bot-{digest}.json")
        self.state_path = os.path.abspath(env.get("BOT_STATE") or default)
        self.wait = number(env, "BOT_WAIT", 60)
        self.max_parallel = int(number(env, "BOT_MAX_PARALLEL", 4, 1))
        self.stop_grace = number(env, "BOT_STOP_GRACE", 10)
        self.run_args = shlex.split(env.get("BOT_RUN_ARGS", ""))
        self.warm = env.get("BOT_WARM", "10m").strip() or "0"
        self.ask = env.get("BOT_ASK", "1").strip() not in ("0", "no", "false", "")
        self.ask_timeout = number(env, "BOT_ASK_TIMEOUT", 300, 1)
        self.edit_interval = number(env, "BOT_EDIT_INTERVAL", 1.5)
        self.api_url = env.get("DISCORD_API_URL", "").rstrip("/")
        self.gateway_url = env.get("DISCORD_GATEWAY_URL", "")


class State:
    def __init__(self, path):
        self.path = path
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as e:
            raise SystemExit(f"cannot read the state file {path}: {e}; fix or remove it")
        self.fresh = set(data.get("fresh", []))
        self.owners = {int(x) for x in data.get("owners", [])}

    def save(self):
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"fresh": sorted(self.fresh), "owners": sorted(self.owners)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class Pairing:
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


# ---------------------------------------------------------------------------------------
# The bot

import discord  # noqa: E402
from discord import app_commands  # noqa: E402


def key_of(channel) -> str:
    if isinstance(channel, discord.Thread):
        return f"discord:{channel.guild.id}:{channel.parent_id}:{channel.id}"
    guild = getattr(channel, "guild", None)
    return f"discord:{guild.id}:{channel.id}" if guild else f"discord:dm:{channel.id}"


class Decision(discord.ui.DynamicItem[discord.ui.Button],
               template=r"clawsess:(?P<decision>allow|deny):(?P<asker>[0-9]+):(?P<request>[0-9a-f-]+)"):
    """An Allow / Deny button. Everything it needs is in its custom_id, so the buttons of a
    bot that was restarted meanwhile still work."""

    def __init__(self, decision: str, asker: int, request_id: str):
        self.decision, self.asker, self.request_id = decision, asker, request_id
        super().__init__(discord.ui.Button(
            label="Allow" if decision == "allow" else "Deny",
            style=discord.ButtonStyle.success if decision == "allow" else discord.ButtonStyle.danger,
            custom_id=f"clawsess:{decision}:{asker}:{request_id}"))

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(match["decision"], int(match["asker"]), match["request"])

    async def interaction_check(self, interaction) -> bool:
        bot = interaction.client
        if interaction.user.id == self.asker or interaction.user.id in bot.state.owners:
            return True
        log.warning("button press by user %s ignored (not the asker %s, not an owner)",
                    interaction.user.id, self.asker)
        await interaction.response.send_message(
            "Only the user who asked, or the bot's owner, can answer this.", ephemeral=True)
        return False

    async def callback(self, interaction):
        bot = interaction.client
        try:
            await bot.cs.answer(self.request_id, self.decision)
            verdict = "✅ Allowed." if self.decision == "allow" else "❌ Denied."
        except ClawsessError as e:
            verdict = "⚠️ " + e.message
        log.info("%s %s by user %s: %s", self.decision, self.request_id, interaction.user.id, verdict)
        bot.asks.pop(self.request_id, None)
        text = shorten(f"{interaction.message.content}\n\n{verdict}", DISCORD_LIMIT)
        await interaction.response.edit_message(content=text, view=None)


class Bot(discord.Client):
    def __init__(self, cfg: Config):
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents)
        self.cfg, self.cs = cfg, cfg.clawsess
        self.state = State(cfg.state_path)
        self.tree = app_commands.CommandTree(self)
        self.pairing: Optional[Pairing] = None
        self.refused = set()
        self.locks = weakref.WeakValueDictionary()
        self.slots = asyncio.Semaphore(cfg.max_parallel)
        self.running = {}  # key -> its clawsess Turn
        self.asks = {}  # request_id -> the message with its buttons
        self.stopping = False
        self.add_commands()

    def allowed(self, user) -> bool:
        return user.id in self.cfg.users or user.id in self.state.owners

    def lock(self, key):
        lock = self.locks.get(key)
        if lock is None:
            lock = self.locks[key] = asyncio.Lock()
        return lock

    async def setup_hook(self):
        self.add_dynamic_items(Decision)
        await self.tree.sync()

    async def on_ready(self):
        log.info("connected as %s (id %s)", self.user, self.user.id)
        if not self.cfg.users and not self.state.owners and self.pairing is None:
            self.pairing = Pairing(self.cfg.pair_ttl)
            log.warning("nobody may use this bot yet. To become its owner, send %s in a DM, "
                        "within %d s:  /pair %s", self.user, self.cfg.pair_ttl, self.pairing.code)

    # -- messages -----------------------------------------------------------------------------

    def addressed(self, message) -> bool:
        if message.guild is None:
            return True
        if self.user in message.mentions:
            return True
        ref = message.reference
        resolved = ref.resolved if ref is not None else None
        return isinstance(resolved, discord.Message) and resolved.author.id == self.user.id

    async def on_message(self, message):
        if message.author.bot:
            return
        text = message.content or ""
        if re.match(r"/pair(\s|$)", text):
            return await self.pair(message, text[5:].strip())
        if not self.addressed(message):
            return
        if not self.allowed(message.author):
            log.warning("refused user %s in channel %s (not allowed)", message.author.id, message.channel.id)
            if message.channel.id not in self.refused:
                self.refused.add(message.channel.id)
                await self.send(message, f"Sorry, I only answer my owner (your user id is "
                                         f"{message.author.id}; the owner can allow it with ALLOWED_USERS).")
            return
        if self.user is not None:
            text = re.sub(rf"<@!?{self.user.id}>", "", text).strip()
        images = [a for a in message.attachments if (a.content_type or "").startswith("image/")]
        if not text and not images:
            return await self.send(message, "I can only read text messages and images.")
        await self.turn(message, text or "(an image, sent without a text)", images)

    async def pair(self, message, code):
        if message.guild is not None:
            if message.channel.id not in self.refused:
                self.refused.add(message.channel.id)
                await self.send(message, "Pairing works only in a DM with me.")
            return
        if self.pairing is not None and self.pairing.take(code):
            self.state.owners.add(message.author.id)
            self.state.save()
            self.pairing = None
            log.warning("paired: user %s is now the owner", message.author.id)
            await self.send(message, "Paired: you are my owner now.")
        else:
            log.warning("pairing: wrong or used code from user %s", message.author.id)
            await self.send(message, "That code does not work (wrong, used or expired).")

    async def send(self, message, text, **extra):
        """TEXT as replies to MESSAGE, split to Discord's limit; the last message sent."""
        sent = None
        for n, piece in enumerate(split_message(text or "(empty reply)")):
            try:
                if n == 0:
                    sent = await message.reply(piece, mention_author=False, **extra)
                else:
                    sent = await message.channel.send(piece, **extra)
            except discord.HTTPException as e:
                log.error("sending to %s: %s", message.channel.id, e)
                return sent
        return sent

    async def turn(self, message, text, attachments=()):
        key = key_of(message.channel)
        async with self.lock(key), self.slots:
            if self.stopping:
                return await self.send(message, STOPPING_TEXT)
            with tempfile.TemporaryDirectory(prefix="clawsess-bot-") as directory:
                images = []
                for n, a in enumerate(attachments):
                    if a.size > IMAGE_LIMIT:
                        return await self.send(message, f"⚠️ {a.filename} is larger than 5 MB.")
                    path = os.path.join(directory, f"{n}-{re.sub(r'[^A-Za-z0-9._-]', '_', a.filename)}")
                    try:
                        await a.save(path)
                    except discord.HTTPException as e:
                        return await self.send(message, f"⚠️ Could not get {a.filename} from Discord ({e}).")
                    images.append(path)
                await self.run_turn(key, message, text, images)

    async def run_turn(self, key, message, text, images):
        fresh = key in self.state.fresh
        log.info("%s: turn (%d chars%s%s)", key, len(text), f", {len(images)} images" if images else "",
                 ", new session" if fresh else "")
        progress = Progress(self, message)
        asked = []
        turn = self.cs.stream(key, text, ask=self.cfg.ask, ask_timeout=self.cfg.ask_timeout, cwd=self.cfg.cwd,
                              new=fresh, wait=self.cfg.wait, warm=self.cfg.warm, images=images,
                              extra=self.cfg.run_args)
        self.running[key] = turn
        error = None
        try:
            async with message.channel.typing():
                async with turn:
                    async for event in turn:
                        if event.type == "tool":
                            summary = tool_summary(event.input)
                            progress.line(f"🔧 {event.tool}" + (f": {summary}" if summary else ""))
                        elif event.type == "text":
                            progress.text(event.text)
                        elif event.type == "permission":
                            asked.append(event.request_id)
                            await self.ask(message, event)
        except Busy:
            error = BUSY_TEXT
        except ClawsessError as e:
            log.warning("%s: clawsess run exited %s: %s", key, e.code, e.stderr.strip()[-2000:])
            error = "⚠️ " + shorten(e.message, 600)
        finally:
            self.running.pop(key, None)
            for request_id in asked:
                if (sent := self.asks.pop(request_id, None)) is not None:
                    try:
                        await sent.edit(content=shorten(f"{sent.content}\n\n⌛ Not answered: denied.",
                                                        DISCORD_LIMIT), view=None)
                    except discord.HTTPException:
                        pass
        result = turn.result
        if self.stopping and (result is None or result.interrupted):
            await progress.finish("⏹ Stopped.")
            return await self.send(message, STOPPING_TEXT)
        if result is not None and result.interrupted:
            await progress.finish("⏹ Stopped.")
            return await self.send(message, "⏹ Stopped before it was done.")
        await progress.finish("✔️ Done." if error is None else "⚠️ Ended with an error.")
        if error is not None:
            return await self.send(message, error)
        if fresh:
            self.state.fresh.discard(key)
            self.state.save()
        reply = result.text
        if result.is_error:
            reply = "⚠️ " + (reply or "Claude Code reported an error")
        elif result.replaced_session:
            reply = "(The previous conversation could not be continued, so this is a new one.)\n\n" + reply
        await self.send(message, reply)

    async def ask(self, message, event):
        text = shorten(f"🔐 Claude wants to use {event.tool}:\n{tool_summary(event.input, 600)}"
                       f"\n\nAllow it? (No answer in {event.get('timeout_s')} s: denied.)", DISCORD_LIMIT)
        view = discord.ui.View(timeout=None)
        for decision in ("allow", "deny"):
            view.add_item(Decision(decision, message.author.id, event.request_id or ""))
        sent = await self.send(message, text, view=view)
        if sent is not None:
            self.asks[event.request_id] = sent

    # -- threads --------------------------------------------------------------------------------

    async def on_raw_thread_update(self, payload):
        """Archived: its warm claude ends (the session stays; a new message continues it)."""
        if not (payload.data.get("thread_metadata") or {}).get("archived"):
            return
        key = f"discord:{payload.guild_id}:{payload.parent_id}:{payload.thread_id}"
        try:
            current = await self.cs.current(key)
            if current is not None:
                log.info("%s: thread archived, cooling its session", key)
                await self.cs.cool(str(current["session_id"]))
        except ClawsessError as e:
            log.warning("%s: cool: %s", key, e.message)

    async def on_raw_thread_delete(self, payload):
        """Deleted: its key is forgotten (the session itself stays listed)."""
        key = f"discord:{payload.guild_id}:{payload.parent_id}:{payload.thread_id}"
        log.info("%s: thread deleted, forgetting its key", key)
        try:
            await self.cs.forget(key)
        except ClawsessError as e:
            log.warning("%s: forget: %s", key, e.message)

    # -- slash commands ---------------------------------------------------------------------------

    def add_commands(self):
        tree, bot = self.tree, self

        async def check(interaction) -> bool:
            if bot.allowed(interaction.user):
                return True
            log.warning("refused /%s from user %s", interaction.command and interaction.command.name,
                        interaction.user.id)
            await interaction.response.send_message(
                f"Sorry, I only answer my owner (your user id is {interaction.user.id}).", ephemeral=True)
            return False
        tree.interaction_check = check

        async def reply(interaction, text):
            pieces = split_message(text)
            await interaction.followup.send(pieces[0]) if interaction.response.is_done() \
                else await interaction.response.send_message(pieces[0])
            for piece in pieces[1:]:
                await interaction.followup.send(piece)

        @tree.command(description="Continue a session started elsewhere (a name or id from /sessions)")
        async def attach(interaction, name: Optional[str] = None):
            key = key_of(interaction.channel)
            if name and (len(name.split()) != 1 or name.startswith("-")):
                return await reply(interaction, "Usage: /attach NAME (a session name or id; see /sessions)")
            await interaction.response.defer(thinking=True)
            try:
                done = await bot.cs.attach(key, name)
            except ClawsessError as e:
                return await reply(interaction, "⚠️ " + e.message)
            label = f" ({done['name']})" if done.get("name") else ""
            await reply(interaction, f"Attached {key} to session {done.get('session_id')}{label} in "
                                     f"{done.get('cwd')}.\n" + topic_text(done.get("topic")))

        @tree.command(description="Back to this channel's own conversation")
        async def detach(interaction):
            try:
                out = await bot.cs.call("detach", "--key", key_of(interaction.channel))
                await reply(interaction, out.strip() or "OK")
            except ClawsessError as e:
                await reply(interaction, "⚠️ " + e.message)

        @tree.command(description="Your next message starts a new conversation")
        async def new(interaction):
            bot.state.fresh.add(key_of(interaction.channel))
            bot.state.save()
            await reply(interaction, "OK: your next message starts a new conversation"
                                     " (and detaches this channel if it is attached).")

        @tree.command(description="Recent sessions")
        async def sessions(interaction):
            try:
                out = await bot.cs.list_text(10)
                await reply(interaction, "```\n" + (out.rstrip().replace("```", "'''") or "no sessions yet") + "\n```")
            except ClawsessError as e:
                await reply(interaction, "⚠️ " + e.message)

        @tree.command(description="Which session this channel talks to, and where it stands")
        async def status(interaction):
            key = key_of(interaction.channel)
            await interaction.response.defer(thinking=True)
            try:
                cur = await bot.cs.current(key)
                if cur is None:
                    text = "This channel has no conversation yet; your next message starts one."
                else:
                    how = {"key": "attached", "global": "following the global attachment",
                           "own": "its own conversation"}.get(cur.get("via"), cur.get("via") or "")
                    text = (f"This channel ({key}) talks to session {cur.get('session_id')} ({how}).\n"
                            + topic_text(await bot.cs.topic(str(cur.get("session_id")))))
            except ClawsessError as e:
                text = "⚠️ " + e.message
            await reply(interaction, text)

        @tree.command(description="Stop the turn Claude is working on here")
        async def stop(interaction):
            key = key_of(interaction.channel)
            log.info("%s: /stop", key)
            try:
                text = "Stopped." if await bot.cs.stop(key) else "Nothing is running here."
            except ClawsessError as e:
                text = "⚠️ " + e.message
            await reply(interaction, text)

    async def shutdown(self):
        deadline = time.monotonic() + self.cfg.stop_grace
        self.stopping = True
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for key, turn in list(self.running.items()):
            log.info("%s: stopping the running turn", key)
            turn.terminate()
        while self.running and time.monotonic() < deadline + 15:
            await asyncio.sleep(0.1)


class Progress:
    """A turn's "working..." message: sent at its first tool call, edited as more come (at
    most once per BOT_EDIT_INTERVAL; discord.py waits out rate limits), and given its last
    state when the turn is over. The reply is a message of its own."""

    MAX_LINES = 25

    def __init__(self, bot, message):
        self.bot, self.message = bot, message
        self.header, self.lines = "⏳ Working…", []
        self.sent = self.shown = self.flusher = None
        self.next_edit, self.sleeping = 0.0, False

    def line(self, line):
        self.lines.append(line)
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.ensure_future(self.flush())

    def text(self, text):
        if self.lines:
            self.line("💬 " + shorten(" ".join(text.split()), 200))

    def render(self):
        lines = self.lines[-self.MAX_LINES:]
        skipped = len(self.lines) - len(lines)
        head = self.header + (f"\n… {skipped} earlier steps" if skipped else "")
        return shorten("\n".join([head, *lines]), DISCORD_LIMIT)

    async def flush(self):
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
        self.shown, self.next_edit = text, time.monotonic() + self.bot.cfg.edit_interval
        try:
            if self.sent is None:
                self.sent = await self.message.reply(text, mention_author=False)
            else:
                await self.sent.edit(content=text)
        except discord.HTTPException as e:
            log.warning("progress message in %s: %s", self.message.channel.id, e)
            self.shown = None

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


async def serve(cfg):
    if cfg.api_url:
        discord.http.Route.BASE = cfg.api_url
    if cfg.gateway_url:
        import yarl
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(cfg.gateway_url)
    bot = Bot(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: (log.info("signal %s: stopping", s), stop.set()))
    runner = asyncio.ensure_future(bot.start(cfg.token))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([runner, stopped], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if runner.done():
        try:
            runner.result()
        except discord.LoginFailure as e:
            log.error("Discord refused the token (%s): check DISCORD_BOT_TOKEN", e)
            code = 1
        except Exception as e:
            log.error("the bot failed: %r", e, exc_info=e)
            code = 1
    await bot.shutdown()
    await bot.close()
    log.info("stopped")
    return code


def main():
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__.strip())
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("discord").setLevel(logging.WARNING)
    return asyncio.run(serve(Config(os.environ)))


if __name__ == "__main__":
    sys.exit(main())
